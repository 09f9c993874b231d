// mutex.h -- mutexes the thread-safety analysis understands (fs/base/thread_annotations.h).
//
// std::mutex and std::shared_mutex carry no annotations in libstdc++, so the analysis
// cannot see them taken or released. These wrappers add nothing else: the same locks,
// with the same cost, and scoped holders for the three ways code here holds them.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>

#include "fs/base/thread_annotations.h"

namespace udax {

// A scope in which this thread takes no lock: code that calls out while holding one (the
// filesystem's in-place read reply, sent with the inode's rw held) marks the call, and a
// lock taken inside it, which could wait on the one held, aborts with the reason instead
// of deadlocking. A check of one thread-local per lock taken.
class NoLocksScope {
 public:
  explicit NoLocksScope(const char* why) : outer_(reason_) { reason_ = why; }
  ~NoLocksScope() { reason_ = outer_; }
  NoLocksScope(const NoLocksScope&) = delete;
  NoLocksScope& operator=(const NoLocksScope&) = delete;

  static void CheckMayLock() {
    if (reason_ != nullptr) {
      std::fprintf(stderr, "udaxfs: lock taken inside %s, which must not take locks\n", reason_);
      std::abort();
    }
  }

 private:
  static inline thread_local const char* reason_ = nullptr;
  const char* const outer_;
};

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() {
    NoLocksScope::CheckMayLock();
    mu_.lock();
  }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the caller holds the lock (for callbacks it cannot follow).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds a Mutex for its scope unless released early; Unlock and Lock again inside the
// scope are checked like any other lock and unlock.
class SCOPED_CAPABILITY ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableMutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  void Unlock() RELEASE() {
    mu_->Unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A reader-writer lock (an inode's rw).
class CAPABILITY("shared mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() {
    NoLocksScope::CheckMayLock();
    mu_.lock();
  }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  void LockShared() ACQUIRE_SHARED() {
    NoLocksScope::CheckMayLock();
    mu_.lock_shared();
  }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }
  bool TryLockShared() TRY_ACQUIRE_SHARED(true) { return mu_.try_lock_shared(); }
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
};

// Holds a SharedMutex exclusively for its scope.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// Holds a SharedMutex shared for its scope.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

}  // namespace udax
