// preload.cc -- libudax-preload.so: direct maps and direct reads for unmodified programs.
//
//   LD_PRELOAD=/usr/local/lib/libudax-preload.so fio --ioengine=mmap ...
//
// A shared mmap(2) of a file on a udaxfs mount (one whose daemon has a control socket)
// becomes a direct map (udax_map), so loads and stores reach the region without FUSE;
// munmap(2) of such a map gives the lease back and msync(2) persists through libudax.
//
// Reads (issue 21): a descriptor opened readable on such a file through open(2) and
// friends is recorded, and its read, pread, readv and preadv are served from a read view
// (client/read_view.h) -- a copy out of the region, guarded against SIGBUS -- instead of
// a FUSE round trip. The daemon revokes the view before anything it shows changes, so a
// read sees every write that returned before it, from any process and either path; a
// read racing with a revoke is done again through the kernel. Bad media gives EIO for
// that range. Writes still go through FUSE.
//
// Descriptor numbers: a read costs no system call, so the table of tracked descriptors
// must not outlive them. Every C-library call that closes or replaces a descriptor is
// wrapped (close, close_range, closefrom, dup2, dup3, fclose of an fdopen'd stream), every
// open through the shim forgets a stale entry of the number it returns, and every 1024th
// read of a descriptor compares it with the shim's private duplicate (kcmp). What is left
// is a descriptor closed by a raw system call (not the C library) whose number a call the
// shim does not see (socket, pipe, ...) reuses: its reads go to the kernel once the check
// sees it, and until then to the old file -- one the program itself opened for reading.
//
// Everything else -- private maps, anonymous memory, files elsewhere, a map or view the
// daemon refuses (no permission on the image: the program gets an ordinary FUSE mmap or
// read) -- goes to the kernel unchanged. UDAX_PRELOAD_READS=0 turns the read path off.
// The library's own mappings and reads use raw system calls, so the shim never recurses.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/read_view.h"
#include "client/safe_copy.h"
#include "include/udaxfs/control.h"
#include "include/udaxfs/udax.h"

namespace {

void* SysMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

// Whether fd is a regular file served by a udaxfs daemon.
bool OnUdaxfs(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const std::string sock = std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(st.st_dev)) +
                           ":" + std::to_string(minor(st.st_dev)) + ".sock";
  struct stat ss;
  return stat(sock.c_str(), &ss) == 0 && S_ISSOCK(ss.st_mode);
}

void* MaybeDirect(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (fd >= 0 && addr == nullptr && (flags & MAP_TYPE) == MAP_SHARED && !(flags & MAP_FIXED) &&
      (prot & (PROT_READ | PROT_WRITE)) && !(prot & PROT_EXEC) && OnUdaxfs(fd)) {
    const int saved = errno;
    void* p = nullptr;
    const int uprot = UDAX_PROT_READ | ((prot & PROT_WRITE) ? UDAX_PROT_WRITE : 0);
    if (udax_map(fd, off, len, uprot, &p) == 0) return p;
    errno = saved;  // refused: an ordinary FUSE mmap, as without the shim
  }
  return SysMmap(addr, len, prot, flags, fd, off);
}

// --- reads ---------------------------------------------------------------------------

using udax_client::ReadView;

// Space asked for past EOF, as DAX filesystems preallocate: it doubles with each ask
// (the daemon caps it at 1 GiB). A write that leaves a gap past EOF (a random writer
// extending a file) asks for it from the aligned chunk holding the write ("at"): the
// gap stays a hole, reserved in its turn if written into, not zeroed whole now.
constexpr uint64_t kFirstReserve = uint64_t{1} << 20;
constexpr uint64_t kMaxReserve = uint64_t{256} << 20;
// A write into a hole asks for the aligned chunk around it to be allocated (zeroed), as
// XFS's extent size hints do: doubling with each ask, so that writes scattered over a
// sparse file make few asks, and halved for good when the daemon refuses one (its
// budget is a sixteenth of the free space); the daemon trims what stayed zero at the
// view's end.
constexpr uint64_t kFirstFill = uint64_t{1} << 20;
constexpr uint64_t kMaxFill = uint64_t{64} << 20;

// A readable descriptor of a udaxfs file, opened through the shim. Descriptors made from
// it by dup share it (they share the file position too).
struct TrackedFile {
  TrackedFile() = default;
  TrackedFile(const TrackedFile&) = delete;
  TrackedFile& operator=(const TrackedFile&) = delete;
  ~TrackedFile() {
    // Our duplicate, unless the number was closed behind our back and reused (the file
    // there is not ours then).
    struct stat st;
    if (shadow >= 0 && fstat(shadow, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
      syscall(SYS_close, shadow);
    }
  }

  int shadow = -1;  // our duplicate: the same open file description
  dev_t dev = 0;
  ino_t ino = 0;
  std::atomic<uint32_t> reads{0};  // for the periodic check of the descriptor
  // The open file's status flags (O_APPEND, O_DSYNC; F_SETFL changes them), and whether
  // it was opened O_RDWR (writes may be served: a write-only one is not tracked).
  std::atomic<int> flags{0};
  bool writable = false;
  std::mutex position_mu;  // read(2), write(2): the file position is read, then moved
  // The open file description is shared with another process (this one forked): its
  // position moves atomically only under the kernel's own lock (f_pos), which the shim's
  // read-then-move cannot take, so read(2) and write(2) at the position go to the kernel
  // from then on. pread and pwrite, which leave the position alone, are still served.
  std::atomic<bool> position_shared{false};
  std::mutex mu;
  std::shared_ptr<ReadView> view;  // GUARDED_BY(mu): writable once a write asked for one
  bool refused = false;            // GUARDED_BY(mu): the daemon will not give a view
  bool write_refused = false;      // GUARDED_BY(mu): ... nor a writable one
  bool wants_write = false;        // GUARDED_BY(mu): ask for writable views from now on
  uint32_t cool_down = 0;          // GUARDED_BY(mu): reads to leave to the kernel first
  uint32_t write_cool_down = 0;    // GUARDED_BY(mu): writes to leave to the kernel first
  uint32_t reads_on_view = 0;      // GUARDED_BY(mu)
  uint32_t writes_on_view = 0;     // GUARDED_BY(mu)
  uint64_t known_size = 0;         // GUARDED_BY(mu): the size the last view showed
  bool size_known = false;         // GUARDED_BY(mu): ... once there was one
  uint64_t next_reserve = 0;       // GUARDED_BY(mu): the last space asked for past EOF
  uint32_t reserve_cool_down = 0;  // GUARDED_BY(mu): writes past EOF to leave to the kernel
  uint64_t next_fill = 0;          // GUARDED_BY(mu): the last chunk asked for around a hole
  uint64_t fill_cap = kMaxFill;    // GUARDED_BY(mu): ... and the largest to ask for
  uint32_t fill_cool_down = 0;     // GUARDED_BY(mu): writes into holes to leave to the kernel
};

// Refusals that will not change for this descriptor.
bool RefusedForGood(int err) {
  return err == -EACCES || err == -EXDEV || err == -EPERM || err == -ENOTSUP || err == -EOPNOTSUPP ||
         err == -EINVAL || err == -EBADF || err == -EROFS;
}

struct Table {
  // The process the table describes. A vfork child shares our memory (not our
  // descriptors) until it execs: what it closes, dups or opens must not change the table.
  pid_t owner = getpid();
  std::shared_mutex mu;
  std::unordered_map<int, std::shared_ptr<TrackedFile>> files;  // GUARDED_BY(mu)
};

// Made at first use: other libraries' constructors (which run before ours) already open
// and close files. Never destroyed: they may also do so at exit.
std::atomic<Table*> table_ptr{nullptr};
Table* T() {
  Table* t = table_ptr.load(std::memory_order_acquire);
  if (t != nullptr) return t;
  auto* made = new Table();
  if (table_ptr.compare_exchange_strong(t, made)) return made;
  delete made;
  return t;
}
std::atomic<bool> reads_on{true};

// Whether this process may change the table (not a vfork child of its owner).
bool TableIsOurs() { return T()->owner == getpid(); }

bool ReadsEnabled() {
  static const bool env_on = [] {
    const char* v = getenv("UDAX_PRELOAD_READS");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return env_on && reads_on.load(std::memory_order_relaxed);
}

// Writes are opt-in (UDAX_PRELOAD_WRITES=1) for now: a writable view's revoke waits for
// the holder, so a stopped holder is killed by another process's truncate or append
// (README, "Writes through the shim").
bool WritesEnabled() {
  static const bool env_on = [] {
    const char* v = getenv("UDAX_PRELOAD_WRITES");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return env_on;
}

// The child of a fork has one thread: the table's locks may have been held by others.
// It starts with a new table holding the same descriptors (the old one is left behind,
// never destroyed, and its views are the parent's).
void TableAfterForkChild() {
  Table* old = T();
  auto* fresh = new Table();
  std::unordered_map<TrackedFile*, std::shared_ptr<TrackedFile>> moved;
  for (auto& [fd, f] : old->files) {
    auto& copy = moved[f.get()];
    if (!copy) {
      copy = std::make_shared<TrackedFile>();
      copy->shadow = f->shadow;
      copy->dev = f->dev;
      copy->ino = f->ino;
      copy->position_shared.store(true);  // with the parent (see TrackedFile)
      f->shadow = -1;  // now the copy's
    }
    fresh->files[fd] = copy;
  }
  table_ptr.store(fresh);  // owner: this process (the constructor's getpid)
}

void Untrack(int fd) {
  if (!TableIsOurs()) return;
  std::shared_ptr<TrackedFile> gone;  // released after the lock
  std::unique_lock<std::shared_mutex> lock(T()->mu);
  auto it = T()->files.find(fd);
  if (it == T()->files.end()) return;
  gone = std::move(it->second);
  T()->files.erase(it);
}

void TrackShared(int from, int to) {
  if (!TableIsOurs()) return;
  std::shared_ptr<TrackedFile> replaced;  // released after the lock (it may end a view)
  std::unique_lock<std::shared_mutex> lock(T()->mu);
  auto it = T()->files.find(from);
  if (it == T()->files.end()) return;
  std::shared_ptr<TrackedFile>& slot = T()->files[to];
  replaced = std::move(slot);
  slot = it->second;
}

// The program closed a number that is one of our duplicates (a close-all loop): the
// files checked against it are no longer checkable.
void ShadowClosed(int fd) {
  if (!TableIsOurs()) return;
  {
    std::shared_lock<std::shared_mutex> lock(T()->mu);
    bool found = false;
    for (const auto& [n, f] : T()->files) found = found || f->shadow == fd;
    if (!found) return;
  }
  std::vector<std::shared_ptr<TrackedFile>> gone;  // released after the lock
  std::unique_lock<std::shared_mutex> lock(T()->mu);
  for (auto it = T()->files.begin(); it != T()->files.end();) {
    if (it->second->shadow == fd) {
      it->second->shadow = -1;
      gone.push_back(std::move(it->second));
      it = T()->files.erase(it);
    } else {
      ++it;
    }
  }
}

// Whether descriptor `fd` is still the open file our duplicate `shadow` is (kcmp).
bool SameOpenFile(int fd, int shadow) {
  const pid_t pid = getpid();
  return shadow >= 0 && syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd, shadow) == 0;
}

// After a successful open: records fd if it is a readable udaxfs file.
void MaybeTrack(int fd, int flags) {
  if (fd < 0 || !ReadsEnabled() || (flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY) return;
  if (!TableIsOurs()) return;
  struct stat st;
  // FUSE mounts have anonymous device numbers (major 0): other files cost one fstat.
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || major(st.st_dev) != 0) return;
  if (!OnUdaxfs(fd)) return;
  const int saved = errno;
  auto f = std::make_shared<TrackedFile>();
  f->shadow = udax_client::DupOutOfTheWay(fd);
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->flags.store(flags);
  f->writable = (flags & O_ACCMODE) == O_RDWR && WritesEnabled();
  errno = saved;
  if (f->shadow < 0) return;  // out of descriptors: the kernel serves it
  // kcmp is how each read checks its descriptor; without it (no CONFIG_KCMP, a seccomp
  // filter) the shim serves no reads at all.
  if (!SameOpenFile(fd, f->shadow)) {
    reads_on.store(false);
    errno = saved;
    return;
  }
  std::shared_ptr<TrackedFile> replaced;  // released after the lock (it may end a view)
  std::unique_lock<std::shared_mutex> lock(T()->mu);
  std::shared_ptr<TrackedFile>& slot = T()->files[fd];
  replaced = std::move(slot);
  slot = std::move(f);
}

// A call handed out descriptor `fd`: an entry under that number is stale (the number was
// closed behind the shim's back).
void Reused(int fd) {
  if (fd < 0) return;
  {
    std::shared_lock<std::shared_mutex> lock(T()->mu);
    if (T()->files.find(fd) == T()->files.end()) return;
  }
  Untrack(fd);
}

// The tracked file behind fd, if fd still is it.
std::shared_ptr<TrackedFile> Tracked(int fd) {
  std::shared_ptr<TrackedFile> f;
  {
    std::shared_lock<std::shared_mutex> lock(T()->mu);
    if (T()->files.empty()) return nullptr;
    auto it = T()->files.find(fd);
    if (it == T()->files.end()) return nullptr;
    f = it->second;
  }
  constexpr uint32_t kCheckEvery = 1024;
  if (f->reads.fetch_add(1, std::memory_order_relaxed) % kCheckEvery == kCheckEvery - 1) {
    if (!SameOpenFile(fd, f->shadow)) {
      Untrack(fd);  // closed and reused (or gone) without us
      return nullptr;
    }
  }
  return f;
}

// File bytes [off, off+n) of `f` from its view: the count, -errno, or kUseKernel.
ssize_t ServeRead(int fd, TrackedFile& f, void* buf, size_t n, uint64_t off) {
  // A view revoked under the copy is asked for again (the daemon answers once the change
  // is done), a few times, before the read goes to the kernel.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::shared_ptr<ReadView> view;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      if (!f.view || !udax_client::ViewUsable(*f.view)) {
        // A view revoked after a few reads (someone appends as we read): let the kernel
        // serve a while rather than ask for a view per read.
        if (attempt == 0 && f.view && f.reads_on_view < 16) f.cool_down = 64;
        f.view.reset();
        if (f.refused) return udax_client::kUseKernel;
        if (f.cool_down > 0) {
          --f.cool_down;
          return udax_client::kUseKernel;
        }
        // Not in a vfork child (the view would be its lease, in our memory); and the
        // duplicate must still be the program's file (a number closed behind our back).
        if (!TableIsOurs() || !SameOpenFile(fd, f.shadow)) {
          return udax_client::kUseKernel;
        }
        const int saved = errno;
        int err = 0;
        // A descriptor that writes through the shim keeps a writable view, which serves
        // its reads too (one lease, not two that revoke each other).
        if (f.wants_write && !f.write_refused) {
          f.view = udax_client::OpenView(f.shadow, true, &err);
          if (!f.view && RefusedForGood(err)) f.write_refused = true;
        }
        if (!f.view && (!f.wants_write || f.write_refused)) f.view = udax_client::OpenView(f.shadow, false, &err);
        errno = saved;
        f.reads_on_view = 0;
        f.writes_on_view = 0;
        if (!f.view) {
          // No permission, not ours, no guard: for good. Anything else may pass.
          if (RefusedForGood(err)) {
            f.refused = true;
          } else if (err != -EAGAIN) {
            f.cool_down = 256;
          }
          return udax_client::kUseKernel;
        }
        f.known_size = f.view->size;
        f.size_known = true;
      }
      ++f.reads_on_view;
      view = f.view;
    }
    const ssize_t r = udax_client::ReadFromView(*view, buf, n, off);
    if (r != udax_client::kUseKernel) return r;
  }
  return udax_client::kUseKernel;
}

ssize_t SysPwrite(int fd, const void* buf, size_t n, off_t off);
ssize_t SysPwritev(int fd, const iovec* iov, int cnt, off_t off);


// Stores buf into file bytes [off, off+n) of `f` through a writable view: n, or
// kUseKernel (bad media, no view, no room past EOF or in a hole: FUSE does it). A write
// past the end asks for a view with space reserved there (appends served in the
// program), one into a hole for a view with the chunk around it filled.
ssize_t ServeWrite(int fd, TrackedFile& f, const void* buf, size_t n, uint64_t off) {
  // Past what a view shows: no ask could make room for it.
  if (off >= udax_client::kMaxViewBytes || n > udax_client::kMaxViewBytes - off) return udax_client::kUseKernel;
  const bool durable = f.flags.load(std::memory_order_relaxed) & O_DSYNC;
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::shared_ptr<ReadView> view;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      if (!f.writable || f.write_refused) return udax_client::kUseKernel;
      const bool usable = f.view && f.view->writable && !f.view->revoked.load(std::memory_order_relaxed);
      // Into a hole below the limit: a view with it filled (a chunk around it) is asked
      // for, unless the last ask got none.
      const bool hole = usable && off + n <= f.view->limit && !udax_client::AllAllocated(*f.view, off, off + n);
      if (hole && f.fill_cool_down > 0) {
        --f.fill_cool_down;
        return udax_client::kUseKernel;
      }
      if (usable && off + n <= f.view->limit && !hole) {
        view = f.view;
      } else {
        // A few writes after a view that served few go to FUSE (someone keeps changing
        // the file); a view that is fine but too short is replaced at once.
        if (!usable) {
          if (attempt == 0 && f.view && f.view->writable && f.writes_on_view < 16) f.write_cool_down = 64;
          if (f.write_cool_down > 0) {
            --f.write_cool_down;
            return udax_client::kUseKernel;
          }
        }
        bool beyond = false;
        const uint64_t known = usable ? udax_client::ViewSize(*f.view, &beyond) : f.known_size;
        // (Before any view the size is unknown: the first view comes without a reservation,
        // and a write past its end asks again.)
        const bool past_eof = (usable || f.size_known) && off + n > known;
        // Durable with its size (O_DSYNC) only through FUSE; just after an ask that got
        // no room (a full filesystem), too.
        if (past_eof && (durable || f.reserve_cool_down > 0)) {
          if (f.reserve_cool_down > 0) --f.reserve_cool_down;
          return udax_client::kUseKernel;
        }
        if (!TableIsOurs() || !SameOpenFile(fd, f.shadow)) return udax_client::kUseKernel;
        uint64_t reserve = 0, reserve_at = 0;
        if (past_eof) {
          f.next_reserve = std::clamp(2 * f.next_reserve, kFirstReserve, kMaxReserve);
          // A write that leaves a gap past EOF (a random writer extending the file): from
          // the aligned chunk holding it, as a fill, the gap before it staying a hole; past
          // the size in any case ("at" beyond EOF tells the daemon the reservation is
          // written in scattered places, and trimmed as a fill).
          if (off > known) reserve_at = std::max(known + 1, off / f.next_reserve * f.next_reserve);
          const uint64_t base = std::max(known, reserve_at);
          reserve = std::max(f.next_reserve, (off + n - base + kFirstReserve - 1) / kFirstReserve * kFirstReserve);
        }
        uint64_t fill_offset = 0, fill_length = 0;
        if (hole && !past_eof) {
          // The aligned chunk holding the write (the daemon keeps to the size).
          f.next_fill = std::clamp(2 * f.next_fill, kFirstFill, f.fill_cap);
          fill_offset = off / f.next_fill * f.next_fill;
          fill_length = std::max(f.next_fill, off + n - fill_offset);
        }
        const int saved = errno;
        int err = 0;
        // The view replaced lives until the new one is granted: were it the file's last
        // writable view, its end would trim what earlier asks reserved or filled (the
        // writes after would fill it again, and again). Settled first: it serves no
        // more, and its revoke by the ask is acknowledged already, so the daemon does not
        // wait for our listener thread.
        std::shared_ptr<ReadView> replaced = std::move(f.view);
        if (replaced) udax_client::SettleView(*replaced);
        f.wants_write = true;
        f.view = udax_client::OpenView(f.shadow, true, &err, reserve, reserve_at, fill_offset, fill_length);
        replaced.reset();
        errno = saved;
        f.reads_on_view = 0;
        f.writes_on_view = 0;
        if (!f.view) {
          if (RefusedForGood(err)) {
            f.write_refused = true;  // reads ask for read views again
          } else if (err != -EAGAIN) {
            f.write_cool_down = 256;
          }
          return udax_client::kUseKernel;
        }
        beyond = false;
        f.known_size = udax_client::ViewSize(*f.view, &beyond);
        f.size_known = true;
        if (off + n > f.view->limit) {
          if (reserve == 0) continue;  // the first view: now the size is known
          // Not all of it (the daemon caps an ask): FUSE writes this one, and the holes it
          // leaves are filled. No room at all (a full filesystem): FUSE for a while.
          if (f.view->limit <= f.known_size) f.reserve_cool_down = 64;
          f.next_reserve = 0;
          return udax_client::kUseKernel;
        }
        if (!udax_client::AllAllocated(*f.view, off, off + n)) {
          if (fill_length == 0 && reserve == 0) continue;  // the first view: now the holes are known
          if (fill_length == 0) {  // a reservation that left it a hole (shared, or short)
            f.next_reserve = 0;
            return udax_client::kUseKernel;
          }
          // Not filled (past the daemon's budget, a full filesystem): a smaller chunk at
          // once, and after the smallest FUSE writes holes for a while.
          if (f.next_fill > kFirstFill) {
            f.fill_cap = f.next_fill / 2;
            f.next_fill = f.next_fill / 4;  // (doubled at the next ask)
            continue;
          }
          f.next_fill = 0;
          f.fill_cool_down = 64;
          return udax_client::kUseKernel;
        }
        view = f.view;
      }
      ++f.writes_on_view;
    }
    const ssize_t r = udax_client::WriteToView(*view, buf, n, off, durable);
    if (r >= 0 && static_cast<size_t>(r) < n) {
      // A revoke between two chunks: the rest through the kernel.
      const ssize_t k = SysPwrite(fd, static_cast<const char*>(buf) + r, n - r, static_cast<off_t>(off + r));
      return k > 0 ? r + k : r;
    }
    if (r != udax_client::kUseKernel || !view->revoked.load()) return r;
  }
  return udax_client::kUseKernel;
}

// Makes what `f`'s writable view stored durable, before fsync(2) asks the daemon for the
// rest (its times; an image's msync).
void PersistTracked(int fd) {
  std::shared_ptr<TrackedFile> f = Tracked(fd);
  if (!f) return;
  std::shared_ptr<ReadView> view;
  {
    std::lock_guard<std::mutex> lock(f->mu);
    view = f->view;
  }
  if (view) udax_client::PersistView(*view);  // a revoked one was flushed by its revoke
}

ssize_t SysRead(int fd, void* buf, size_t n) { return syscall(SYS_read, fd, buf, n); }
ssize_t SysPread(int fd, void* buf, size_t n, off_t off) { return syscall(SYS_pread64, fd, buf, n, off); }
ssize_t SysReadv(int fd, const iovec* iov, int cnt) { return syscall(SYS_readv, fd, iov, cnt); }
ssize_t SysPreadv(int fd, const iovec* iov, int cnt, off_t off) {
  // The kernel takes the offset as two longs (low, high).
  return syscall(SYS_preadv, fd, iov, cnt, static_cast<unsigned long>(off), 0UL);
}

ssize_t Result(ssize_t r) {
  if (r >= 0) return r;
  errno = static_cast<int>(-r);
  return -1;
}

// Vector bytes from offset `off` of `f`: the count, -errno or kUseKernel (only when
// nothing was copied: a later failure makes the read short).
ssize_t ServeVector(int fd, TrackedFile& f, const iovec* iov, int cnt, uint64_t off) {
  if (cnt < 0 || cnt > IOV_MAX) return -EINVAL;
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    const ssize_t r = ServeRead(fd, f, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r < 0) return total > 0 ? total : r;
    total += r;
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  return total;
}

ssize_t ReadAt(int fd, void* buf, size_t n, off_t off) {
  std::shared_ptr<TrackedFile> f = off >= 0 ? Tracked(fd) : nullptr;
  if (!f) return SysPread(fd, buf, n, off);
  const ssize_t r = ServeRead(fd, *f, buf, n, static_cast<uint64_t>(off));
  return r == udax_client::kUseKernel ? SysPread(fd, buf, n, off) : Result(r);
}

ssize_t ReadVectorAt(int fd, const iovec* iov, int cnt, off_t off) {
  std::shared_ptr<TrackedFile> f = off >= 0 ? Tracked(fd) : nullptr;
  if (!f) return SysPreadv(fd, iov, cnt, off);
  const ssize_t r = ServeVector(fd, *f, iov, cnt, static_cast<uint64_t>(off));
  return r == udax_client::kUseKernel ? SysPreadv(fd, iov, cnt, off) : Result(r);
}

// read(2) and readv(2): at the file position, which moves by what was read. The position
// is the kernel's (shared with dups and children), read and set around the copy.
template <typename Serve, typename Kernel>
ssize_t ReadAtPosition(int fd, Serve serve, Kernel kernel) {
  std::shared_ptr<TrackedFile> f = Tracked(fd);
  if (!f || f->position_shared.load(std::memory_order_relaxed)) return kernel();
  std::lock_guard<std::mutex> lock(f->position_mu);
  // Through our duplicate (the same open file description): `fd` may be closed and
  // reused by another thread meanwhile, the duplicate not. The read and the move are two
  // steps, ordered with this process's other reads and writes at the position by
  // position_mu; no other process shares the description (position_shared).
  const int desc = f->shadow;
  const off_t pos = static_cast<off_t>(syscall(SYS_lseek, desc, 0, SEEK_CUR));
  if (pos < 0) return kernel();
  const ssize_t r = serve(*f, static_cast<uint64_t>(pos));
  if (r == udax_client::kUseKernel) return kernel();
  if (r > 0) syscall(SYS_lseek, desc, pos + r, SEEK_SET);
  return Result(r);
}

ssize_t SysWrite(int fd, const void* buf, size_t n) { return syscall(SYS_write, fd, buf, n); }
ssize_t SysPwrite(int fd, const void* buf, size_t n, off_t off) {
  return syscall(SYS_pwrite64, fd, buf, n, off);
}
ssize_t SysWritev(int fd, const iovec* iov, int cnt) { return syscall(SYS_writev, fd, iov, cnt); }
// The kernel takes preadv2/pwritev2's offset as two longs too (-1: the file position).
ssize_t PreadV2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return syscall(SYS_preadv2, fd, iov, cnt, static_cast<unsigned long>(off), 0UL, flags);
}
ssize_t PwriteV2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return syscall(SYS_pwritev2, fd, iov, cnt, static_cast<unsigned long>(off), 0UL, flags);
}
ssize_t SysPwritev(int fd, const iovec* iov, int cnt, off_t off) {
  return syscall(SYS_pwritev, fd, iov, cnt, static_cast<unsigned long>(off), 0UL);
}

// Vector bytes to offset `off` of `f`: the count, or kUseKernel when not one could be
// stored (a later one that cannot be makes the write short: POSIX allows it, and the
// caller writes the rest again, through FUSE).
ssize_t ServeVectorWrite(int fd, TrackedFile& f, const iovec* iov, int cnt, uint64_t off) {
  if (cnt < 0 || cnt > IOV_MAX) return -EINVAL;
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    const ssize_t r = ServeWrite(fd, f, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r == udax_client::kUseKernel && total > 0) {
      // The rest through the kernel (a regular file's write is not short).
      const ssize_t k = SysPwritev(fd, iov + i, cnt - i, static_cast<off_t>(off + total));
      return k > 0 ? total + k : total;
    }
    if (r < 0) return total > 0 ? total : r;
    total += r;
  }
  return total;
}

// A write the shim may serve: a tracked, read-write descriptor without O_APPEND (whose
// end only the kernel knows).
std::shared_ptr<TrackedFile> TrackedForWrite(int fd) {
  std::shared_ptr<TrackedFile> f = Tracked(fd);
  if (!f || !f->writable || (f->flags.load(std::memory_order_relaxed) & O_APPEND)) return nullptr;
  return f;
}

ssize_t WriteAt(int fd, const void* buf, size_t n, off_t off) {
  std::shared_ptr<TrackedFile> f = off >= 0 ? TrackedForWrite(fd) : nullptr;
  if (!f) return SysPwrite(fd, buf, n, off);
  const ssize_t r = ServeWrite(fd, *f, buf, n, static_cast<uint64_t>(off));
  return r == udax_client::kUseKernel ? SysPwrite(fd, buf, n, off) : Result(r);
}

ssize_t WriteVectorAt(int fd, const iovec* iov, int cnt, off_t off) {
  std::shared_ptr<TrackedFile> f = off >= 0 ? TrackedForWrite(fd) : nullptr;
  if (!f) return SysPwritev(fd, iov, cnt, off);
  const ssize_t r = ServeVectorWrite(fd, *f, iov, cnt, static_cast<uint64_t>(off));
  return r == udax_client::kUseKernel ? SysPwritev(fd, iov, cnt, off) : Result(r);
}

// write(2) and writev(2) at the file position, as ReadAtPosition.
template <typename Serve, typename Kernel>
ssize_t WriteAtPosition(int fd, Serve serve, Kernel kernel) {
  std::shared_ptr<TrackedFile> f = TrackedForWrite(fd);
  if (!f || f->position_shared.load(std::memory_order_relaxed)) return kernel();
  std::lock_guard<std::mutex> lock(f->position_mu);
  const int desc = f->shadow;
  const off_t pos = static_cast<off_t>(syscall(SYS_lseek, desc, 0, SEEK_CUR));
  if (pos < 0) return kernel();
  const ssize_t r = serve(*f, static_cast<uint64_t>(pos));
  if (r == udax_client::kUseKernel) return kernel();
  if (r > 0) syscall(SYS_lseek, desc, pos + r, SEEK_SET);
  return Result(r);
}

// fcntl: F_SETFL changes what the shim serves (O_APPEND), F_DUPFD makes a descriptor of
// the same open file.
int Fcntl(int fd, int cmd, void* arg) {
  // The C library's own (its F_GETOWN, locks as cancellation points, ...).
  using FcntlFn = int (*)(int, int, ...);
  static FcntlFn real = [] {
    void* f = dlsym(RTLD_NEXT, "fcntl64");
    return reinterpret_cast<FcntlFn>(f != nullptr ? f : dlsym(RTLD_NEXT, "fcntl"));
  }();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const int r = real(fd, cmd, arg);
  if (r < 0) return r;
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    Reused(r);
    TrackShared(fd, r);
  } else if (cmd == F_SETFL) {
    std::shared_ptr<TrackedFile> f = Tracked(fd);
    if (f) {
      const int now = static_cast<int>(syscall(SYS_fcntl, fd, F_GETFL));
      if (now >= 0) f->flags.store(now);
    }
  }
  return r;
}

int OpenFlags(int flags, va_list ap, mode_t* mode) {
  *mode = 0;
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) *mode = va_arg(ap, mode_t);
  return flags;
}

int OpenAt(int dirfd, const char* path, int flags, mode_t mode) {
  const int fd = static_cast<int>(syscall(SYS_openat, dirfd, path, flags, mode));
  if (fd >= 0) {
    Reused(fd);
    MaybeTrack(fd, flags);
  }
  return fd;
}

// Forgets the tracked descriptors in [first, last], and our duplicates there (their
// numbers are closed too: never close them again later).
void UntrackRange(unsigned first, unsigned last) {
  if (!TableIsOurs()) return;
  std::vector<std::shared_ptr<TrackedFile>> gone;  // released after the lock
  std::unique_lock<std::shared_mutex> lock(T()->mu);
  for (auto it = T()->files.begin(); it != T()->files.end();) {
    TrackedFile& f = *it->second;
    if (f.shadow >= 0 && static_cast<unsigned>(f.shadow) >= first && static_cast<unsigned>(f.shadow) <= last) {
      f.shadow = -1;
    }
    if (static_cast<unsigned>(it->first) >= first && static_cast<unsigned>(it->first) <= last) {
      gone.push_back(std::move(it->second));
      it = T()->files.erase(it);
    } else {
      ++it;
    }
  }
}

using SignalFn = sighandler_t (*)(int, sighandler_t);
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

// fork(): the table's lock is held across it, so the child copies a consistent table.
// (libudax's own handlers, registered later, run their prepare first: its lock, then
// ours. Nothing takes ours and then libudax's: entries are never released under it.)
void TableBeforeFork() { T()->mu.lock(); }
void TableAfterForkParent() {
  // The child has every description too: their positions are shared from now on.
  for (auto& [fd, f] : T()->files) f->position_shared.store(true);
  T()->mu.unlock();
}
void TableAfterForkChildLocked() {
  Table* old = T();
  TableAfterForkChild();
  old->mu.unlock();  // the old table is left behind, unlocked
}

__attribute__((constructor)) void InitShim() {
  pthread_atfork(TableBeforeFork, TableAfterForkParent, TableAfterForkChildLocked);
}

}  // namespace

extern "C" {

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return MaybeDirect(addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return MaybeDirect(addr, len, prot, flags, fd, off);
}

int munmap(void* addr, size_t len) {
  if (udax_unmap(addr) == 0) return 0;
  return static_cast<int>(syscall(SYS_munmap, addr, len));
}

int msync(void* addr, size_t len, int flags) {
  if (udax_is_mapped(addr, len)) {
    const int rc = udax_persist(addr, len);
    if (rc == 0) return 0;
    errno = -rc;
    return -1;
  }
  return static_cast<int>(syscall(SYS_msync, addr, len, flags));
}

// --- reads (see the top of this file) ---

#define UDAX_OPEN_BODY(dirfd)               \
  va_list ap;                               \
  va_start(ap, flags);                      \
  mode_t mode;                              \
  OpenFlags(flags, ap, &mode);              \
  va_end(ap);                               \
  return OpenAt(dirfd, path, flags, mode);

int open(const char* path, int flags, ...) { UDAX_OPEN_BODY(AT_FDCWD) }
int open64(const char* path, int flags, ...) { UDAX_OPEN_BODY(AT_FDCWD) }
int openat(int dirfd, const char* path, int flags, ...) { UDAX_OPEN_BODY(dirfd) }
int openat64(int dirfd, const char* path, int flags, ...) { UDAX_OPEN_BODY(dirfd) }
// What _FORTIFY_SOURCE builds call when the flags are not a constant.
int __open_2(const char* path, int flags) { return OpenAt(AT_FDCWD, path, flags, 0); }
int __open64_2(const char* path, int flags) { return OpenAt(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char* path, int flags) { return OpenAt(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char* path, int flags) { return OpenAt(dirfd, path, flags, 0); }

ssize_t read(int fd, void* buf, size_t n) {
  return ReadAtPosition(
      fd, [&](TrackedFile& f, uint64_t pos) { return ServeRead(fd, f, buf, n, pos); },
      [&] { return SysRead(fd, buf, n); });
}
ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  return ReadAtPosition(
      fd, [&](TrackedFile& f, uint64_t pos) { return ServeVector(fd, f, iov, cnt, pos); },
      [&] { return SysReadv(fd, iov, cnt); });
}
ssize_t pread(int fd, void* buf, size_t n, off_t off) { return ReadAt(fd, buf, n, off); }
ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return ReadAt(fd, buf, n, off); }
ssize_t preadv(int fd, const struct iovec* iov, int cnt, off_t off) { return ReadVectorAt(fd, iov, cnt, off); }
ssize_t preadv64(int fd, const struct iovec* iov, int cnt, off_t off) { return ReadVectorAt(fd, iov, cnt, off); }

ssize_t write(int fd, const void* buf, size_t n) {
  return WriteAtPosition(
      fd, [&](TrackedFile& f, uint64_t pos) { return ServeWrite(fd, f, buf, n, pos); },
      [&] { return SysWrite(fd, buf, n); });
}
ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  return WriteAtPosition(
      fd, [&](TrackedFile& f, uint64_t pos) { return ServeVectorWrite(fd, f, iov, cnt, pos); },
      [&] { return SysWritev(fd, iov, cnt); });
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) { return WriteAt(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return WriteAt(fd, buf, n, off); }
ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) { return WriteVectorAt(fd, iov, cnt, off); }
ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) { return WriteVectorAt(fd, iov, cnt, off); }
// preadv2 and pwritev2: served as preadv/pwritev (at the position for offset -1) when no
// flag but RWF_HIPRI (a hint) asks for more; RWF_NOWAIT, RWF_DSYNC, RWF_SYNC and
// RWF_APPEND are the kernel's to honour.
ssize_t preadv2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  if ((flags & ~RWF_HIPRI) != 0 || off < -1) return PreadV2(fd, iov, cnt, off, flags);
  if (off == -1) {
    return ReadAtPosition(
        fd, [&](TrackedFile& f, uint64_t pos) { return ServeVector(fd, f, iov, cnt, pos); },
        [&] { return PreadV2(fd, iov, cnt, off, flags); });
  }
  return ReadVectorAt(fd, iov, cnt, off);
}
ssize_t preadv64v2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return preadv2(fd, iov, cnt, off, flags);
}
ssize_t pwritev2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  if ((flags & ~RWF_HIPRI) != 0 || off < -1) return PwriteV2(fd, iov, cnt, off, flags);
  if (off == -1) {
    return WriteAtPosition(
        fd, [&](TrackedFile& f, uint64_t pos) { return ServeVectorWrite(fd, f, iov, cnt, pos); },
        [&] { return PwriteV2(fd, iov, cnt, off, flags); });
  }
  return WriteVectorAt(fd, iov, cnt, off);
}
ssize_t pwritev64v2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return pwritev2(fd, iov, cnt, off, flags);
}

// A descriptor passed to another process (SCM_RIGHTS) shares its open file description,
// and its position, with that process from then on, as after a fork.
ssize_t sendmsg(int sock, const struct msghdr* msg, int flags) {
  if (msg != nullptr && msg->msg_control != nullptr && msg->msg_controllen >= sizeof(cmsghdr)) {
    for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
        if (std::shared_ptr<TrackedFile> f = Tracked(fd)) f->position_shared.store(true);
      }
    }
  }
  // A cancellation point, as the C library's: its own, not the raw system call.
  using SendmsgFn = ssize_t (*)(int, const struct msghdr*, int);
  static SendmsgFn real = reinterpret_cast<SendmsgFn>(dlsym(RTLD_NEXT, "sendmsg"));
  if (real == nullptr) return syscall(SYS_sendmsg, sock, msg, flags);
  return real(sock, msg, flags);
}

// The stores are flushed here; the daemon then persists the times (and msyncs an image).
int fsync(int fd) {
  PersistTracked(fd);
  return static_cast<int>(syscall(SYS_fsync, fd));
}
int fdatasync(int fd) {
  PersistTracked(fd);
  return static_cast<int>(syscall(SYS_fdatasync, fd));
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // an int or a pointer: the C library reads it so too
  va_end(ap);
  return Fcntl(fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return Fcntl(fd, cmd, arg);
}

int close(int fd) {
  Untrack(fd);
  ShadowClosed(fd);
  udax_client::ClosingDescriptors closing(static_cast<unsigned>(fd), static_cast<unsigned>(fd));
  return static_cast<int>(syscall(SYS_close, fd));
}

int close_range(unsigned int first, unsigned int last, int flags) {
  if (flags & CLOSE_RANGE_CLOEXEC) return static_cast<int>(syscall(SYS_close_range, first, last, flags));
  UntrackRange(first, last);
  udax_client::ClosingDescriptors closing(first, last);
  return static_cast<int>(syscall(SYS_close_range, first, last, flags));
}

void closefrom(int lowfd) {
  if (lowfd < 0) lowfd = 0;
  UntrackRange(static_cast<unsigned>(lowfd), ~0U);
  udax_client::ClosingDescriptors closing(static_cast<unsigned>(lowfd), ~0U);
  if (syscall(SYS_close_range, static_cast<unsigned>(lowfd), ~0U, 0) == 0) return;
  // No close_range (before Linux 5.9): one by one, as the C library does.
  for (long fd = lowfd, max = sysconf(_SC_OPEN_MAX); fd < max; ++fd) syscall(SYS_close, fd);
}

// A stream made by fdopen(3) of a tracked descriptor closes it inside the C library.
int fclose(FILE* stream) {
  using FcloseFn = int (*)(FILE*);
  static FcloseFn real = reinterpret_cast<FcloseFn>(dlsym(RTLD_NEXT, "fclose"));
  if (stream != nullptr) Untrack(fileno(stream));
  return real(stream);
}

int dup(int fd) {
  const int to = static_cast<int>(syscall(SYS_dup, fd));
  if (to >= 0) {
    Reused(to);
    TrackShared(fd, to);
  }
  return to;
}
int dup2(int fd, int to) {
  if (fd == to) return static_cast<int>(syscall(SYS_fcntl, fd, F_GETFD)) < 0 ? -1 : to;
  std::optional<udax_client::ClosingDescriptors> closing;
  if (to >= 0 && syscall(SYS_fcntl, fd, F_GETFD) >= 0) closing.emplace(static_cast<unsigned>(to), static_cast<unsigned>(to));
  const int r = static_cast<int>(syscall(SYS_dup2, fd, to));
  closing.reset();
  if (r >= 0) {
    Untrack(to);
    TrackShared(fd, to);
  }
  return r;
}
int dup3(int fd, int to, int flags) {
  std::optional<udax_client::ClosingDescriptors> closing;
  if (fd != to && to >= 0 && syscall(SYS_fcntl, fd, F_GETFD) >= 0) {
    closing.emplace(static_cast<unsigned>(to), static_cast<unsigned>(to));
  }
  const int r = static_cast<int>(syscall(SYS_dup3, fd, to, flags));
  closing.reset();
  if (r >= 0) {
    Untrack(to);
    TrackShared(fd, to);
  }
  return r;
}

// SIGBUS and SIGSEGV are shared with the copy guard once it is installed: the program's
// action is kept and called for every such signal that is not a guarded copy's.
int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if ((sig == SIGBUS || sig == SIGSEGV) && udax_client::SigbusGuardInstalled()) {
    return udax_client::SetProgramFaultAction(sig, act, old);
  }
  static SigactionFn real = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(sig, act, old);
}

sighandler_t signal(int sig, sighandler_t handler) {
  if ((sig == SIGBUS || sig == SIGSEGV) && udax_client::SigbusGuardInstalled()) {
    struct sigaction act {}, old{};
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;  // BSD semantics, as glibc's signal()
    udax_client::SetProgramFaultAction(sig, &act, &old);
    // sa_handler and sa_sigaction share their storage: this is what signal() returns too.
    return old.sa_handler;
  }
  static SignalFn real = reinterpret_cast<SignalFn>(dlsym(RTLD_NEXT, "signal"));
  if (real == nullptr) return SIG_ERR;
  return real(sig, handler);
}

}  // extern "C"
