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
// On a file-backed region (an image, a file on fsdax) a new view's pages are not present
// yet, and the first touch of each costs a fault (on a PVM guest a hypervisor exit: the
// first pass over a fresh map runs at 0.3-2 GB/s, the second at 20). So the view keeps
// the region's descriptor and copies a chunk with pread/pwrite of it, the kernel's copy,
// except reads of a page or less, which cost less faulting their page in. A chunk
// served so more than once over (the program comes back to it) is made present in the
// map by a low-priority thread (view_warmer.h), and from then on served by a copy from
// the map: 1.5M random 4 KiB reads a second here, against 0.33M by the descriptor. A
// single pass never pays for making pages present it would touch once. Both copies are
// inside the same seqlock, and the descriptor shows the same bytes as the map (one page
// cache; one medium on fsdax), so which one a call takes changes its speed only.
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

// The region's descriptor on a file-backed region, at a high number, shared by this
// process's views of one mount with the same access (read-only, read-write): one
// descriptor, not one per view, against the program's own limit. A program that closes
// or replaces that number through the shim (ClosingDescriptors) takes it from the views
// first, which then copy from the map alone, and the next view gets a new one; a number
// closed by a raw system call is caught at the next check (every 1024th use compares it
// with the region's device and inode). A revoke lets go of it: a revoked view holds no
// reference to the region, as its map holds none.
struct RegionDescriptor {
  RegionDescriptor() = default;
  RegionDescriptor(const RegionDescriptor&) = delete;
  RegionDescriptor& operator=(const RegionDescriptor&) = delete;
  ~RegionDescriptor();  // closes it, unless the program took the number

  std::atomic<int> fd{-1};
  dev_t dev = 0;
  ino_t ino = 0;
  std::atomic<bool> lost{false};     // not to be used any more
  std::atomic<uint32_t> users{0};    // copies through it in flight
  std::atomic<uint32_t> uses{0};     // for the periodic check
};

struct ReadView : std::enable_shared_from_this<ReadView> {
  ReadView() = default;
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  ~ReadView();  // unmaps, and closes the lease socket: the daemon reaps the lease

  uint8_t* base = nullptr;
  size_t mapped = 0;  // bytes of address space from base
  uint64_t size = 0;  // the file's size at grant (a change of it revokes the view, but
                      // for stores past EOF of writable views: ViewSize)
  uint64_t limit = 0;  // >= size: how far the extents reach (a writable view's space past
                       // EOF, reserved for it: it stores there and publishes the new size)
  uint64_t lease = 0;
  uint64_t gen = 0;                  // the view page's generation this view is good for
  const uint64_t* words = nullptr;   // the view page (include/udaxfs/control.h), read-only
  uint64_t fork_generation = 0;  // a child does not have the parent's views
  int sock = -1;                 // our end of the lease socket (the listener's)
  uint64_t* write_words = nullptr;     // the write page: read-write only if `writable`
  bool writable = false;
  bool sync = false;    // every write durable before it returns (-o sync, chattr +S)
  bool devdax = false;  // stores reach media by a cache flush (else the page cache's msync)
  bool size_limited = false;  // RLIMIT_FSIZE was set at grant: no stores past EOF
  struct Extent {
    uint64_t file_offset, phys, length;  // file [file_offset, +length) is region [phys, ...)
  };
  std::vector<Extent> extents;  // what is mapped, sorted by file_offset, not overlapping
  // File-backed regions only (null on devdax, and once revoked): the region, for the
  // chunks not yet warm.
  std::atomic<std::shared_ptr<RegionDescriptor>> region;
  // Chunk k is file bytes [k << kChunkShift, +1 << kChunkShift).
  static constexpr unsigned kChunkShift = 21;
  struct Chunk {
    std::atomic<bool> warm{false};      // present in the map: served from it
    std::atomic<uint32_t> cold_bytes{0};  // served by the descriptor so far (saturating)
  };
  std::unique_ptr<Chunk[]> chunks;
  size_t chunk_count = 0;
  std::atomic<size_t> warm_count{0};
  std::atomic<bool> all_warm{false};  // every chunk is (or there is no region)
  bool warm_on_reuse = false;  // chunks served more than once over are made warm
  std::atomic<bool> revoked{false};
  std::atomic<uint32_t> inflight{0};  // stores in progress (a writable view's revoke waits)
  std::atomic<bool> has_bad{false};
  std::mutex bad_mu;
  std::vector<std::pair<uint64_t, uint64_t>> bad;  // GUARDED_BY(bad_mu): file [offset, end)
  std::mutex dirty_mu;
  uint64_t dirty_lo = UINT64_MAX, dirty_hi = 0;  // GUARDED_BY(dirty_mu): stored, not flushed
};

// The largest file a view shows: address space is finite (128 TiB), files need not be.
constexpr uint64_t kMaxViewBytes = uint64_t{1} << 40;

// Asks the daemon of `fd`'s mount for a view of the file, writable or not; `reserve`
// (writable): bytes past EOF to store appends into (the reply's limit says how many it
// got: maybe none, on a full filesystem), from `reserve_at` past EOF when that is
// further (a write that leaves a gap: it stays a hole); [fill_offset, fill_offset+fill_length)
// (writable): file bytes below the size whose holes to allocate for writes into them
// (AllAllocated says whether they were: maybe not, past the daemon's budget). On refusal
// returns null and sets *err (-EACCES: no permission on the region, or the descriptor is
// not open for it; -EPERM: a set-ID, immutable or append-only file (writable); -EXDEV:
// not udaxfs; -E2BIG: too fragmented; -EAGAIN: the file changed meanwhile; -ENOTCONN: no
// daemon).
std::shared_ptr<ReadView> OpenView(int fd, bool writable, int* err, uint64_t reserve = 0, uint64_t reserve_at = 0,
                                   uint64_t fill_offset = 0, uint64_t fill_length = 0);

// Stops serving from `view` for good (stores in flight end first) and acknowledges its
// revoke before the daemon asks: a view kept alive while this process asks for its
// replacement, whose reservation or fill revokes it, then costs the daemon no wait for
// our listener thread (which a loaded machine may delay past the lease deadline).
void SettleView(ReadView& view);

// Whether file bytes [off, end) are all allocated in the view (no hole to fill).
bool AllAllocated(const ReadView& view, uint64_t off, uint64_t end);

// The file's size as `view` knows it: its size at grant, or further where writable views
// (this process's or another's) stored past it, up to its limit. *beyond: the file is
// known to be larger than the view reaches (read that part through FUSE).
uint64_t ViewSize(const ReadView& view, bool* beyond);

// Whether `view` still serves: not revoked, and made in this process (not a parent's).
bool ViewUsable(const ReadView& view);

// A close-on-exec duplicate of fd at a high number (half the descriptor limit, at most
// 4096), out of the way of programs that expect the lowest free ones; -1 on failure.
int DupOutOfTheWay(int fd);

// Held across a system call of the shim's that closes or replaces descriptors [first,
// last] (close, close_range, closefrom, dup2, dup3): views whose region descriptor is
// among them stop using it first (after the copies through it in flight) and never close
// it themselves, and no view takes a new one until the call is done.
class ClosingDescriptors {
 public:
  ClosingDescriptors(unsigned first, unsigned last);
  ~ClosingDescriptors();
  ClosingDescriptors(const ClosingDescriptors&) = delete;
  ClosingDescriptors& operator=(const ClosingDescriptors&) = delete;

 private:
  enum class Held { kNothing, kCount, kLock } held_ = Held::kNothing;
};

// What a read of the view gives.
constexpr ssize_t kUseKernel = -100000;  // the view went away under the copy: read via FUSE
// Copies file bytes [off, off+n) into buf: the number copied (0 at or past the size,
// short before a bad range), -EIO when the first byte is bad, or kUseKernel.
ssize_t ReadFromView(ReadView& view, void* buf, size_t n, uint64_t off);
// Stores buf into file bytes [off, off+n) of a writable view: n, or kUseKernel when the
// range is not all allocated below the limit, touches a bad range, or the view went away
// (a store cut short then is done again whole through FUSE). `durable`: flushed to media
// before returning (O_DSYNC); otherwise at the next Persist or revoke. A store that ends
// past the size (space reserved past EOF) raises the size the write page publishes; one
// that must be durable with its size (O_DSYNC), or is under a file size limit, goes to
// FUSE.
ssize_t WriteToView(ReadView& view, const void* buf, size_t n, uint64_t off, bool durable);
// Makes what this view stored durable (fsync): 0, or kUseKernel when the view went away
// (its revoke persisted it).
int PersistView(ReadView& view);

}  // namespace udax_client
