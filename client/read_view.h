// read_view.h -- views: the preload shim's read(2) and write(2) straight to the region
// (issue 21).
//
// A view is a lease of a whole file (control op "view"): its allocated extents mapped, in
// order, into one stretch of this process's address space whose holes are anonymous zero
// pages, with the size and the bad ranges the daemon knew at grant. A read view maps them
// read-only; a writable view ("prot": "rw") read-write, and the shim stores overwrites
// into them. The daemon revokes a view before anything it shows changes -- blocks freed
// or moved, an allocation, a new size -- and the listener thread (udax.cc) then replaces
// the stretch with pages that fault, so a copy racing with a revoke fails cleanly and the
// call is done again through FUSE. For a read view the daemon does not wait for that:
// what makes a copy good is the view page (fs/core/view_page.h), whose generation a copy
// checks after it ends. For a writable view it waits: the listener first lets the stores
// in flight finish (`inflight`), makes them durable, and only then unmaps and
// acknowledges. Every store into the file in place, ours or the daemon's, is bracketed in
// the write page, so a copy that overlapped one goes again. A new bad range ({"bad"}) is
// added to the view.
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
  uint64_t* write_words = nullptr;     // the write page: read-write only if `writable`
  bool writable = false;
  bool sync = false;    // every write durable before it returns (-o sync, chattr +S)
  bool devdax = false;  // stores reach media by a cache flush (else the page cache's msync)
  std::vector<std::pair<uint64_t, uint64_t>> allocated;  // file [offset, end), sorted
  std::atomic<bool> revoked{false};
  std::atomic<uint32_t> inflight{0};  // stores in progress (a writable view's revoke waits)
  std::atomic<bool> has_bad{false};
  std::mutex bad_mu;
  std::vector<std::pair<uint64_t, uint64_t>> bad;  // GUARDED_BY(bad_mu): file [offset, end)
  std::mutex dirty_mu;
  uint64_t dirty_lo = UINT64_MAX, dirty_hi = 0;  // GUARDED_BY(dirty_mu): stored, not flushed
};

// Asks the daemon of `fd`'s mount for a view of the file, writable or not. On refusal
// returns null and sets *err (-EACCES: no permission on the region, or the descriptor is
// not open for it; -EPERM: a set-ID, immutable or append-only file (writable); -EXDEV:
// not udaxfs; -E2BIG: too fragmented; -EAGAIN: the file changed meanwhile; -ENOTCONN: no
// daemon).
std::shared_ptr<ReadView> OpenView(int fd, bool writable, int* err);

// Whether `view` still serves: not revoked, and made in this process (not a parent's).
bool ViewUsable(const ReadView& view);

// What a read of the view gives.
constexpr ssize_t kUseKernel = -100000;  // the view went away under the copy: read via FUSE
// Copies file bytes [off, off+n) into buf: the number copied (0 at or past the size,
// short before a bad range), -EIO when the first byte is bad, or kUseKernel.
ssize_t ReadFromView(ReadView& view, void* buf, size_t n, uint64_t off);
// Stores buf into file bytes [off, off+n) of a writable view: n, or kUseKernel when the
// range is not all allocated below the size, touches a bad range, or the view went away
// (a store cut short then is done again whole through FUSE). `durable`: flushed to media
// before returning (O_DSYNC); otherwise at the next Persist or revoke.
ssize_t WriteToView(ReadView& view, const void* buf, size_t n, uint64_t off, bool durable);
// Makes what this view stored durable (fsync): 0, or kUseKernel when the view went away
// (its revoke persisted it).
int PersistView(ReadView& view);

}  // namespace udax_client
