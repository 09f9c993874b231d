// thread_annotations.h -- Clang's thread-safety analysis, as LevelDB's port/ spells it.
//
// Lock rules are written on the code they govern, and clang's -Wthread-safety (CI's
// sanitizer build, with -Werror) checks every call and member access against them:
//   GUARDED_BY(mu)       a member read or written only with `mu` held
//   REQUIRES(mu)         a function called with `mu` held (exclusive)
//   REQUIRES_SHARED(mu)  ... held at least shared
//   EXCLUDES(mu)         a function that takes `mu` itself, so must not be called with it
//   ACQUIRED_BEFORE(mu)  lock order: this mutex is taken before `mu`, never after
// Other compilers see nothing.
#pragma once

#if defined(__clang__)
#define UDAX_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define UDAX_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) UDAX_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY UDAX_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) UDAX_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) UDAX_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) UDAX_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) UDAX_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) UDAX_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) UDAX_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) UDAX_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) UDAX_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) UDAX_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) UDAX_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) UDAX_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) UDAX_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) UDAX_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) UDAX_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) UDAX_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) UDAX_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS UDAX_THREAD_ANNOTATION(no_thread_safety_analysis)
