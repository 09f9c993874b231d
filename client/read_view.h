// read_view.h -- read views: the preload shim's read(2) straight from the region (issue 21).
//
// A read view is a read-only lease of a whole file (control op "view"): its allocated
// extents mapped read-only, in order, into one stretch of this process's address space
// whose holes are anonymous zero pages, with the size and the bad ranges the daemon
// knew at grant. The daemon revokes it before anything it shows changes -- blocks freed or
// moved, an allocation, a new size -- and the listener thread (udax.cc) then replaces the
// stretch with pages that fault, so a copy racing with a revoke fails cleanly and the read
// is done again through FUSE. The daemon does not wait for that: what makes a copy good
// is the view page (fs/core/view_page.h), whose generation a copy checks after it ends
// and whose sequence count makes a copy that overlapped an in-place write go again. A new
// bad range ({"bad"}) is added to the view.
//
// Internal to libudax and the shim; not installed.
//
// Thread-safety: every function may be called from any thread; a view is shared
// (shared_ptr) and its last owner gives the lease back.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace udax_client {

struct ReadView {
  ReadView() = default;
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  ~ReadView();  // unmaps, and closes the lease socket: the daemon reaps the lease

  uint8_t* base = nullptr;
  size_t mapped = 0;  // bytes of address space from base
  uint64_t size = 0;  // the file's size at grant (a change of it revokes the view)
  uint64_t lease = 0;
  uint64_t gen = 0;                  // the view page's generation this view is good for
  const uint64_t* words = nullptr;   // the view page (include/udaxfs/control.h), read-only
  uint64_t fork_generation = 0;  // a child does not have the parent's views
  int sock = -1;                 // our end of the lease socket (the listener's)
  std::atomic<bool> revoked{false};
  std::atomic<bool> has_bad{false};
  std::mutex bad_mu;
  std::vector<std::pair<uint64_t, uint64_t>> bad;  // GUARDED_BY(bad_mu): file [offset, end)
};

// Asks the daemon of `fd`'s mount for a read view of the file. On refusal returns null
// and sets *err (-EACCES: no permission on the region; -EXDEV: not udaxfs; -E2BIG: too
// fragmented; -EAGAIN: the file changed meanwhile; -ENOTCONN: no daemon).
std::shared_ptr<ReadView> OpenReadView(int fd, int* err);

// Whether `view` still serves: not revoked, and made in this process (not a parent's).
bool ViewUsable(const ReadView& view);

// What a read of the view gives.
constexpr ssize_t kUseKernel = -100000;  // the view went away under the copy: read via FUSE
// Copies file bytes [off, off+n) into buf: the number copied (0 at or past the size,
// short before a bad range), -EIO when the first byte is bad, or kUseKernel.
ssize_t ReadFromView(ReadView& view, void* buf, size_t n, uint64_t off);

}  // namespace udax_client
