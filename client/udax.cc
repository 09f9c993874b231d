// udax.cc -- libudax: direct maps of udaxfs files (include/udaxfs/udax.h).
//
// One control connection per mount (keyed by st_dev), one listener thread per process
// polling every lease socket. Requests and their replies on a control connection are
// serialized by its mutex; the listener never takes it, so a revoke is answered even
// while another thread waits for a map reply.
#include "include/udaxfs/udax.h"

#include "client/read_view.h"
#include "client/safe_copy.h"
#include "client/view_warmer.h"

#include <fcntl.h>
#include <libpmem.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/base/control_packet.h"
#include "fs/base/poll_loop.h"
#include "fs/base/source_thread.h"
#include "include/udaxfs/control.h"

namespace {

// The library's own mappings go straight to the kernel: under the LD_PRELOAD shim
// (preload.cc) the names mmap and munmap are the shim's, and must not recurse into it.
void* SysMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int SysMunmap(void* addr, size_t len) { return static_cast<int>(syscall(SYS_munmap, addr, len)); }

struct Connection {
  int fd = -1;
  std::mutex mu;  // one request at a time
  ~Connection() {
    if (fd >= 0) close(fd);
  }
};

struct DirectMap {
  uint8_t* base = nullptr;
  size_t length = 0;  // mapped bytes (page multiple)
  uint64_t offset = 0;
  uint64_t lease = 0;
  int sock = -1;  // our end of the lease socket; -1 once revoked
  bool revoked = false;
  bool devdax = false;
  std::shared_ptr<Connection> conn;
};

struct State {
  std::mutex mu;
  std::map<dev_t, std::shared_ptr<Connection>> conns;
  std::map<uintptr_t, DirectMap> maps;  // by base address
  std::map<int, std::weak_ptr<udax_client::ReadView>> views;  // by lease socket
  // Lease sockets given back by other threads: only the listener closes them, so that a
  // number it polls is never closed and reused under it.
  std::vector<int> dead_socks;
  // The process this state is: a vfork child shares our memory, not our descriptors.
  pid_t owner = getpid();
  int wake = -1;                        // eventfd: the poll set changed
  int sigbus_fd = -1;                   // empty memfd: maps of it fault with SIGBUS
  bool listener = false;
  udax_event_fn callback = nullptr;
  void* callback_arg = nullptr;
};

State& S() {
  static State* s = new State();  // never destroyed: the listener may outlive main
  return *s;
}

// Bumped in a child after fork: views made before it are the parent's (their memory is
// MADV_DONTFORK, so absent here).
std::atomic<uint64_t> fork_generation{0};

// The region descriptors of this process's views (read_view.h). Its own lock, a leaf:
// every close the shim wraps may come here, the library's own too (which may hold
// State::mu).
struct RegionDescriptors {
  std::mutex mu;
  std::set<udax_client::RegionDescriptor*> all;  // GUARDED_BY(mu): from dup to close
  // GUARDED_BY(mu): the one views of a mount (st_dev) with an access (writable) share.
  std::map<std::pair<dev_t, bool>, std::weak_ptr<udax_client::RegionDescriptor>> by_mount;
};
// Never destroyed (closes at exit come here); a child of fork gets a new one.
std::atomic<RegionDescriptors*> region_descriptors{new RegionDescriptors()};
// How many there are (region_descriptors->all.size()), or are being made, read without
// the lock; and how many ClosingDescriptors went on without it, seeing none. The two
// pair up: a close either sees a descriptor being made and takes the lock, or the one
// making it waits for that close to end before it picks a number.
std::atomic<size_t> region_descriptor_count{0};
std::atomic<size_t> unlocked_closes{0};

bool SendJson(int fd, const nlohmann::json& j, int pass_fd = -1) {
  const std::string out = j.dump();
  std::vector<int> fds;
  if (pass_fd >= 0) fds.push_back(pass_fd);
  return udax::SendPacket(fd, out, fds, 0) == static_cast<ssize_t>(out.size());
}

// One packet and the descriptors that came with it (closed when `fds` is null, or when the
// packet is not a whole JSON message).
bool RecvJson(int fd, nlohmann::json* out, std::vector<int>* fds, int flags = 0) {
  udax::ReceivedPacket packet;
  const ssize_t n = udax::RecvPacket(fd, flags, &packet);
  const bool ok = n > 0 && !packet.truncated;
  if (ok) *out = nlohmann::json::parse(packet.data, nullptr, false);
  const bool parsed = ok && !out->is_discarded();
  for (int f : packet.fds) {
    if (parsed && fds != nullptr) {
      fds->push_back(f);
    } else {
      close(f);
    }
  }
  return parsed;
}

// Replaces the map's pages with ones that raise SIGBUS when touched. REQUIRES S().mu.
void RevokeLocked(DirectMap* m) {
  if (m->revoked) return;
  SysMmap(m->base, m->length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, S().sigbus_fd, 0);
  m->revoked = true;
}

void RaiseMce(void* addr) {
  siginfo_t si{};
  si.si_signo = SIGBUS;
  si.si_code = BUS_MCEERR_AO;
  si.si_addr = addr;
  si.si_addr_lsb = 12;  // one page
  // A thread may queue any si_code to itself (the kernel refuses it to any other task,
  // even another thread of this process): the listener thread takes the signal, as the
  // kernel's own AO goes to whichever thread it picks.
  syscall(SYS_rt_tgsigqueueinfo, getpid(), static_cast<pid_t>(syscall(SYS_gettid)), SIGBUS, &si);
}

// Flushes what a writable view stored on devdax (an image's page cache is the daemon's
// to msync). REQUIRES the mapping to stay: an inflight count, or the listener's revoke.
void FlushDirty(udax_client::ReadView* v) {
  uint64_t lo, hi;
  {
    std::lock_guard<std::mutex> lock(v->dirty_mu);
    lo = v->dirty_lo;
    hi = v->dirty_hi;
    v->dirty_lo = UINT64_MAX;
    v->dirty_hi = 0;
  }
  if (lo < hi) pmem_persist(v->base + lo, hi - lo);
}

// Takes a view's stretch away: pages that fault replace it (the copy in flight, if any,
// fails and the read goes through FUSE). `revoked` is set first, so a reader that faults
// on the new pages sees it. A writable view's stores in flight finish first, and what it
// stored is made durable: the daemon waits for our acknowledgement before it changes the
// blocks.
void RevokeView(udax_client::ReadView* v) {
  if (v->revoked.exchange(true)) return;
  if (v->writable) {
    while (v->inflight.load() != 0) sched_yield();  // a store is a memcpy: short
    if (v->devdax) FlushDirty(v);
  }
  if (v->mapped > 0 &&
      SysMmap(v->base, v->mapped, PROT_READ, MAP_SHARED | MAP_FIXED, S().sigbus_fd, 0) != MAP_FAILED) {
    madvise(v->base, v->mapped, MADV_DONTFORK);
  }
  // Nor the descriptor: a revoked view keeps no reference to the region (an unmount, a
  // removed namespace). Copies in flight hold their own.
  v->region.store(nullptr);
}

// A packet (or a hang-up: !got) on socket `fd` if it is a read view's; false if not.
bool HandleViewMessage(int fd, bool got, const nlohmann::json& msg) {
  State& s = S();
  std::shared_ptr<udax_client::ReadView> v;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.views.find(fd);
    if (it == s.views.end()) return false;
    v = it->second.lock();
    if (!v || !got || msg.contains("revoke")) s.views.erase(it);  // no more packets wanted
  }
  if (!v) return true;  // its owner is giving it back (the destructor closes the socket)
  if (!got) {
    RevokeView(v.get());  // the daemon is gone
  } else if (msg.contains("revoke")) {
    RevokeView(v.get());
    // A read view's generation word already said it; a writable view's stores have
    // stopped, which the daemon waits to hear.
    if (v->writable) SendJson(fd, {{"ack", v->lease}});
  } else if (msg.contains("bad") && msg["bad"].is_object()) {
    const uint64_t off = msg["bad"].value("offset", uint64_t{0});
    const uint64_t len = msg["bad"].value("length", uint64_t{0});
    std::lock_guard<std::mutex> lock(v->bad_mu);
    v->bad.emplace_back(off, off + len);
    v->has_bad.store(true, std::memory_order_release);
  }
  return true;  // `v` is released outside s.mu: its destructor takes it
}

void Listen() {
  State& s = S();
  while (true) {
    std::vector<pollfd> fds = {{s.wake, POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(s.mu);
      for (int fd : s.dead_socks) close(fd);
      s.dead_socks.clear();
      for (const auto& [a, m] : s.maps) {
        if (m.sock >= 0) fds.push_back({m.sock, POLLIN, 0});
      }
      for (const auto& [sock, v] : s.views) fds.push_back({sock, POLLIN, 0});
    }
    if (!udax::PollRetrying(fds, -1).ok()) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!read(s.wake, &v, sizeof(v));
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0 || (fds[i].revents & POLLNVAL)) continue;
      nlohmann::json msg;
      // Never blocks: poll may report a hang-up that comes with no packet.
      const bool got = (fds[i].revents & POLLIN) && RecvJson(fds[i].fd, &msg, nullptr, MSG_DONTWAIT);
      if (HandleViewMessage(fds[i].fd, got, msg)) continue;
      std::lock_guard<std::mutex> lock(s.mu);
      DirectMap* m = nullptr;
      for (auto& [a, x] : s.maps) {
        if (x.sock == fds[i].fd) m = &x;
      }
      if (m == nullptr) continue;
      if (!got) {  // the daemon is gone: nobody serves these blocks any more
        RevokeLocked(m);
        close(m->sock);
        m->sock = -1;
        continue;
      }
      if (msg.contains("revoke")) {
        RevokeLocked(m);
        SendJson(m->sock, {{"ack", m->lease}});
        close(m->sock);
        m->sock = -1;
      } else if (msg.contains("mce")) {
        const uint64_t off = msg["mce"].value("offset", uint64_t{0});
        const uint64_t len = msg["mce"].value("length", uint64_t{0});
        if (off < m->offset || off >= m->offset + m->length) continue;
        void* addr = m->base + (off - m->offset);
        if (s.callback) s.callback(addr, len, s.callback_arg);
        RaiseMce(addr);
      }
    }
  }
}

// fork(): the child has one thread, none of our maps (MADV_DONTFORK) and copies of our
// sockets, which must not be used by two processes: it starts afresh.
// The region descriptors' lock after State::mu (the listener closes under State::mu).
void BeforeFork() {
  S().mu.lock();
  region_descriptors.load()->mu.lock();
}
void AfterForkParent() {
  region_descriptors.load()->mu.unlock();
  S().mu.unlock();
}
void AfterForkChild() {
  State& s = S();
  for (auto& [a, m] : s.maps) {
    if (m.sock >= 0) close(m.sock);
  }
  s.maps.clear();
  for (auto& [sock, v] : s.views) close(sock);
  s.views.clear();
  for (int fd : s.dead_socks) close(fd);
  s.dead_socks.clear();
  s.conns.clear();
  if (s.wake >= 0) close(s.wake);
  if (s.sigbus_fd >= 0) close(s.sigbus_fd);
  s.wake = s.sigbus_fd = -1;
  s.listener = false;
  for (udax_client::RegionDescriptor* d : region_descriptors.load()->all) {
    syscall(SYS_close, d->fd.exchange(-1));  // the child's copy; its views are the parent's
  }
  region_descriptors.store(new RegionDescriptors());  // the old one is left behind, locked
  region_descriptor_count.store(0);
  unlocked_closes.store(0);  // the threads of those are the parent's
  s.owner = getpid();
  udax_client::WarmerAfterForkChild();
  fork_generation.fetch_add(1);
  s.mu.unlock();
}

// REQUIRES S().mu.
int StartListenerLocked() {
  State& s = S();
  if (s.listener) return 0;
  static bool at_fork = false;
  if (!at_fork) {
    pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild);
    at_fork = true;
  }
  s.wake = eventfd(0, EFD_CLOEXEC);
  s.sigbus_fd = static_cast<int>(syscall(SYS_memfd_create, "udax-revoked", MFD_CLOEXEC));
  if (s.wake < 0 || s.sigbus_fd < 0) return -errno;
  std::thread(Listen).detach();
  s.listener = true;
  return 0;
}

void Wake() {
  const uint64_t one = 1;
  (void)!write(S().wake, &one, sizeof(one));
}

std::shared_ptr<Connection> Connect(dev_t dev, int* err) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.conns.find(dev);
  if (it != s.conns.end()) return it->second;
  const std::string path = std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(dev)) + ":" +
                           std::to_string(minor(dev)) + ".sock";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *err = -EXDEV;  // no udaxfs daemon serves this device
    return nullptr;
  }
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *err = -ENOTCONN;
    if (fd >= 0) close(fd);
    return nullptr;
  }
  auto c = std::make_shared<Connection>();
  c->fd = fd;
  s.conns[dev] = c;
  return c;
}

// Forgets a connection the daemon closed (it closes idle ones), so the next Connect opens
// a new one.
void Disconnect(dev_t dev, const std::shared_ptr<Connection>& conn) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.conns.find(dev);
  if (it != s.conns.end() && it->second == conn) s.conns.erase(it);
}

// Sends a lease request (map or view) with the file's descriptor and takes the reply: 0
// with the `want_fds` descriptors it carries in *fds (kSomeFds: two or more, as a map of
// a file on several devices has), or -errno.
constexpr size_t kSomeFds = 0;
int RequestLease(dev_t dev, int fd, const nlohmann::json& request, size_t want_fds,
                 nlohmann::json* reply, std::vector<int>* fds, std::shared_ptr<Connection>* conn) {
  // A connection the daemon closed as idle fails the first request: once more on a new one.
  for (int attempt = 0;; ++attempt) {
    int err = 0;
    *conn = Connect(dev, &err);
    if (!*conn) return err;
    std::lock_guard<std::mutex> lock((*conn)->mu);
    if (SendJson((*conn)->fd, request, fd) && RecvJson((*conn)->fd, reply, fds)) break;
    for (int f : *fds) close(f);
    fds->clear();
    Disconnect(dev, *conn);
    if (attempt == 1) return -ENOTCONN;
  }
  if (!reply->value("ok", false) || (want_fds == kSomeFds ? fds->size() < 2 : fds->size() != want_fds)) {
    for (int f : *fds) close(f);
    fds->clear();
    const int e = reply->value("errno", EIO);
    return -(e > 0 ? e : EIO);
  }
  return 0;
}

// A stretch of `len` bytes of address space aligned to `align`, of zero pages (what a
// view's holes read), or nullptr.
uint8_t* ReserveAligned(size_t len, uint64_t align, int prot) {
  void* raw = SysMmap(nullptr, len + align, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + align - 1) / align * align);
  if (base > raw) SysMunmap(raw, base - static_cast<uint8_t*>(raw));
  SysMunmap(base + len, static_cast<uint8_t*>(raw) + len + align - (base + len));
  return base;
}

}  // namespace

extern "C" int udax_map(int fd, off_t offset, size_t length, int prot, void** addr) {
  if (addr == nullptr || length == 0 || offset < 0 || !(prot & UDAX_PROT_READ) ||
      (prot & ~(UDAX_PROT_READ | UDAX_PROT_WRITE))) {
    return -EINVAL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  {
    std::lock_guard<std::mutex> lock(S().mu);
    if (int e = StartListenerLocked(); e != 0) return e;
  }
  const bool writable = prot & UDAX_PROT_WRITE;
  nlohmann::json reply;
  std::vector<int> fds;
  std::shared_ptr<Connection> conn;
  // "devices": "many": the file may lie on several devices of one filesystem, each
  // mapped through its own descriptor: the first device's, the lease socket, then the
  // others', and every extent says which ("descriptor": its place among the devices'
  // descriptors, 0 the first).
  const int err = RequestLease(st.st_dev, fd,
                               {{"op", "map"}, {"offset", static_cast<uint64_t>(offset)},
                                {"length", static_cast<uint64_t>(length)}, {"prot", writable ? "rw" : "r"},
                                {"devices", "many"}},
                               kSomeFds, &reply, &fds, &conn);
  if (err != 0) return err;
  const int lease_sock = fds[1];
  std::vector<int> regions = {fds[0]};
  regions.insert(regions.end(), fds.begin() + 2, fds.end());
  auto close_regions = [&regions] {
    for (int r : regions) close(r);
  };
  const uint64_t align = std::max<uint64_t>(reply.value("map_align", uint64_t{4096}), 4096);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // A devdax device maps only in whole units of its alignment (2 MiB): the map covers the
  // whole allocation units under [offset, offset+length), which belong to this file.
  const bool devdax = reply.value("region_kind", "") == "devdax";
  const uint64_t unit = devdax ? align : page;
  if (offset % unit != 0) {
    close_regions();
    close(lease_sock);
    return -EINVAL;
  }
  const size_t len = (length + unit - 1) / unit * unit;
  // A contiguous stretch of address space, aligned so devdax can use huge pages.
  uint8_t* base = ReserveAligned(len, align, PROT_NONE);
  if (base == nullptr) {
    close_regions();
    close(lease_sock);
    return -ENOMEM;
  }
  const int mprot = PROT_READ | (writable ? PROT_WRITE : 0);
  int rc = 0;
  for (const auto& e : reply["extents"]) {
    const uint64_t fo = e.value("file_offset", uint64_t{0}), ph = e.value("phys", uint64_t{0});
    const uint64_t el = (e.value("length", uint64_t{0}) + unit - 1) / unit * unit;
    const uint64_t s = std::max<uint64_t>(fo, offset), t = std::min<uint64_t>(fo + el, offset + len);
    if (s >= t) continue;
    const size_t device = e.value("descriptor", size_t{0});
    if (device >= regions.size()) {  // a reply we cannot follow: map nothing of it
      rc = -EIO;
      break;
    }
    if (SysMmap(base + (s - offset), t - s, mprot, MAP_SHARED | MAP_FIXED, regions[device], ph + (s - fo)) ==
        MAP_FAILED) {
      rc = -errno;
      break;
    }
  }
  close_regions();
  if (rc == 0) madvise(base, len, MADV_DONTFORK);  // a child must not keep our lease's memory
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  DirectMap m;
  m.base = base;
  m.length = len;
  m.offset = static_cast<uint64_t>(offset);
  m.lease = reply.value("lease", uint64_t{0});
  m.sock = lease_sock;
  m.devdax = devdax;
  m.conn = conn;
  if (rc != 0) {
    SysMunmap(base, len);
    close(lease_sock);  // the daemon sees the hang-up as the lease given back
    return rc;
  }
  s.maps[reinterpret_cast<uintptr_t>(base)] = m;
  Wake();
  *addr = base;
  return 0;
}

extern "C" int udax_unmap(void* addr) {
  State& s = S();
  DirectMap m;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.maps.find(reinterpret_cast<uintptr_t>(addr));
    if (it == s.maps.end()) return -EINVAL;
    m = it->second;
    s.maps.erase(it);
    if (m.sock >= 0) s.dead_socks.push_back(m.sock);  // the listener closes it at its next wake
  }
  Wake();
  SysMunmap(m.base, m.length);
  if (!m.revoked && m.conn) {
    std::lock_guard<std::mutex> lock(m.conn->mu);
    nlohmann::json reply;
    if (SendJson(m.conn->fd, {{"op", "unmap"}, {"lease", m.lease}})) RecvJson(m.conn->fd, &reply, nullptr);
  }
  return 0;
}

extern "C" int udax_persist(const void* addr, size_t len) {
  State& s = S();
  bool devdax = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.maps.upper_bound(reinterpret_cast<uintptr_t>(addr));
    if (it == s.maps.begin()) return -EINVAL;
    --it;
    const DirectMap& m = it->second;
    const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    if (a + len > reinterpret_cast<uintptr_t>(m.base) + m.length || m.revoked) return -EINVAL;
    devdax = m.devdax;
  }
  if (devdax) {
    pmem_persist(addr, len);  // CPU cache flush: devdax memory is the media
    return 0;
  }
  // The page cache of an image or a file: msync, straight to the kernel (the shim owns
  // the name msync).
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr) / page * page;
  const size_t n = reinterpret_cast<uintptr_t>(addr) + len - a;
  return syscall(SYS_msync, a, n, MS_SYNC) == 0 ? 0 : -errno;
}

extern "C" int udax_is_mapped(const void* addr, size_t len) {
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.maps.upper_bound(reinterpret_cast<uintptr_t>(addr));
  if (it == s.maps.begin()) return 0;
  --it;
  const DirectMap& m = it->second;
  return !m.revoked &&
         reinterpret_cast<uintptr_t>(addr) + len <= reinterpret_cast<uintptr_t>(m.base) + m.length;
}

extern "C" void udax_set_event_callback(udax_event_fn fn, void* arg) {
  std::lock_guard<std::mutex> lock(S().mu);
  S().callback = fn;
  S().callback_arg = arg;
}

struct udax_subscription {
  int sock = -1;
  udax_subscriber_fn fn = nullptr;
  void* arg = nullptr;
  udax::SourceThread thread;
};

extern "C" int udax_subscribe(const char* path, udax_subscriber_fn fn, void* arg,
                              udax_subscription** out) {
  if (path == nullptr || fn == nullptr || out == nullptr) return -EINVAL;
  struct stat st;
  if (stat(path, &st) != 0) return -errno;
  const std::string sock_path = std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(st.st_dev)) +
                                ":" + std::to_string(minor(st.st_dev)) + ".sock";
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) close(fd);
    return -EXDEV;
  }
  nlohmann::json reply;
  if (!SendJson(fd, {{"op", "subscribe"}}) || !RecvJson(fd, &reply, nullptr)) {
    close(fd);
    return -ENOTCONN;
  }
  if (!reply.value("ok", false)) {
    close(fd);
    return -EACCES;
  }
  udax::Result<udax::SourceThread> thread = udax::SourceThread::Create();
  if (!thread.ok()) {
    close(fd);
    return -thread.status().code();
  }
  auto* sub = new udax_subscription();
  sub->sock = fd;
  sub->fn = fn;
  sub->arg = arg;
  sub->thread = std::move(thread).value();
  sub->thread.Start([sub] {
    while (true) {
      pollfd p[1] = {{sub->sock, POLLIN, 0}};
      udax::Result<udax::Wake> wake = sub->thread.Wait(p);
      if (!wake.ok()) continue;
      if (*wake == udax::Wake::kStopped) return;
      nlohmann::json msg;
      if (!RecvJson(sub->sock, &msg, nullptr)) return;  // the daemon is gone
      if (msg.contains("event")) sub->fn(msg["event"].dump().c_str(), sub->arg);
    }
  });
  *out = sub;
  return 0;
}

extern "C" void udax_unsubscribe(udax_subscription* sub) {
  if (sub == nullptr) return;
  sub->thread.Stop();
  close(sub->sock);
  delete sub;
}

namespace udax_client {

RegionDescriptor::~RegionDescriptor() {
  // Under the lock ClosingDescriptors takes: a number the program closes now is either
  // taken from us there, or closed here before the program's close goes on. One a raw
  // system call closed and something reopened is not ours to close.
  RegionDescriptors& r = *region_descriptors.load();
  std::lock_guard<std::mutex> lock(r.mu);
  region_descriptor_count.fetch_sub(r.all.erase(this));
  struct stat st;
  if (const int n = fd.exchange(-1); n >= 0 && fstat(n, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
    syscall(SYS_close, n);
  }
}

ReadView::~ReadView() {
  if (fork_generation != ::fork_generation.load()) return;  // a parent's: nothing is ours
  if (writable && devdax && !revoked.load()) FlushDirty(this);  // ours alone now: no store in flight
  if (mapped > 0) SysMunmap(base, mapped);
  if (words != nullptr) SysMunmap(const_cast<uint64_t*>(words), UDAX_VIEW_PAGE_SIZE);
  if (write_words != nullptr) SysMunmap(write_words, UDAX_VIEW_PAGE_SIZE);
  if (sock >= 0) {
    {
      std::lock_guard<std::mutex> lock(S().mu);
      S().views.erase(sock);
      S().dead_socks.push_back(sock);  // the daemon reaps the lease at the hang-up
    }
    Wake();
  }
}

namespace {

// UDAX_PRELOAD_COPY: how a file-backed view's bytes are copied (read_view.h). "auto"
// (the default): by the descriptor until the program comes back to a chunk, then from
// the map; "map": from the map alone, as on devdax; "kernel": by the descriptor alone.
enum class CopyPath { kAuto, kMap, kKernel };

// Copies through this thread's region descriptors in flight (a signal handler that
// closes one must not wait for its own thread).
thread_local uint32_t region_uses_here = 0;

CopyPath CopyPathFromEnv() {
  static const CopyPath path = [] {
    const char* v = getenv("UDAX_PRELOAD_COPY");
    if (v != nullptr && strcmp(v, "map") == 0) return CopyPath::kMap;
    if (v != nullptr && strcmp(v, "kernel") == 0) return CopyPath::kKernel;
    return CopyPath::kAuto;
  }();
  return path;
}

}  // namespace

int DupOutOfTheWay(int fd) {
  // High, out of the way of programs that expect the lowest free numbers (close(1) and
  // open: the new file is stdout), below the limit.
  struct rlimit lim {};
  long low = 0;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    low = static_cast<long>(std::min<rlim_t>(lim.rlim_cur / 2, 4096));
  }
  return static_cast<int>(syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, low));
}

ClosingDescriptors::ClosingDescriptors(unsigned first, unsigned last) {
  // A vfork child closes its own copies of the numbers, and must not touch our state.
  if (getpid() != S().owner) return;
  unlocked_closes.fetch_add(1);
  if (region_descriptor_count.load() == 0) {  // the usual case: no lock
    held_ = Held::kCount;
    return;
  }
  unlocked_closes.fetch_sub(1);
  RegionDescriptors& r = *region_descriptors.load();
  r.mu.lock();  // until the call is done: no descriptor is made meanwhile
  held_ = Held::kLock;
  for (RegionDescriptor* d : r.all) {
    const int fd = d->fd.load();
    if (fd < 0 || static_cast<unsigned>(fd) < first || static_cast<unsigned>(fd) > last) continue;
    d->lost.store(true);
    // Copies through it finish first (not this thread's own: a signal handler's close).
    while (d->users.load() > region_uses_here) sched_yield();
    d->fd.store(-1);  // the program closes the number: we must not
  }
}

ClosingDescriptors::~ClosingDescriptors() {
  if (held_ == Held::kCount) unlocked_closes.fetch_sub(1);
  if (held_ == Held::kLock) region_descriptors.load()->mu.unlock();
}

namespace {

// Whether this process has a file size limit (RLIMIT_FSIZE), which pwrite obeys.
bool FileSizeLimited() {
  struct rlimit lim {};
  return getrlimit(RLIMIT_FSIZE, &lim) != 0 || lim.rlim_cur != RLIM_INFINITY;
}

// The region descriptor for views of mount `mount` with this access, sharing the one
// there is; `region` is the descriptor a grant brought. Null when it is not a regular
// file (devdax) or no number is free.
std::shared_ptr<RegionDescriptor> ShareRegion(dev_t mount, bool writable, int region) {
  struct stat st;
  if (fstat(region, &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  RegionDescriptors& r = *region_descriptors.load();
  std::shared_ptr<RegionDescriptor> old;  // let go after the lock: its destructor takes it
  std::lock_guard<std::mutex> lock(r.mu);
  std::weak_ptr<RegionDescriptor>& slot = r.by_mount[{mount, writable}];
  old = slot.lock();
  if (old && !old->lost.load() && old->dev == st.st_dev && old->ino == st.st_ino) return old;
  // Counted before the number is picked, and no close that did not see the count is
  // still going: a number a close is taking away cannot be ours (ClosingDescriptors).
  region_descriptor_count.fetch_add(1);
  while (unlocked_closes.load() != 0) sched_yield();
  const int high = DupOutOfTheWay(region);
  if (high < 0) {
    region_descriptor_count.fetch_sub(1);
    return nullptr;
  }
  auto d = std::make_shared<RegionDescriptor>();
  d->fd.store(high);
  d->dev = st.st_dev;
  d->ino = st.st_ino;
  r.all.insert(d.get());
  slot = d;
  return d;
}

}  // namespace

bool ViewUsable(const ReadView& view) {
  return !view.revoked.load(std::memory_order_relaxed) &&
         view.fork_generation == ::fork_generation.load(std::memory_order_relaxed) &&
         __atomic_load_n(view.words + UDAX_VIEW_GEN_OFFSET / 8, __ATOMIC_ACQUIRE) == view.gen;
}

std::shared_ptr<ReadView> OpenView(int fd, bool writable, int* err, uint64_t reserve, uint64_t reserve_at,
                                   uint64_t fill_offset, uint64_t fill_length) {
  // How much of a devdax view is made present at once (MADV_POPULATE_READ), instead of a
  // page fault per 4 KiB on first reads. A file-backed one is warmed in the background.
  constexpr uint64_t kPopulateBytes = uint64_t{1} << 30;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *err = -errno;
    return nullptr;
  }
  if (!InstallSigbusGuard()) {
    *err = -ENOTSUP;  // a read could not survive a fault: no view
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(S().mu);
    if (int e = StartListenerLocked(); e != 0) {
      *err = e;
      return nullptr;
    }
  }
  nlohmann::json reply;
  std::vector<int> fds;
  std::shared_ptr<Connection> conn;
  nlohmann::json request = {{"op", "view"}, {"extents", "compact"}};
  if (writable) request["prot"] = "rw";
  if (writable && reserve > 0) request["reserve"] = reserve;
  if (writable && reserve > 0 && reserve_at > 0) request["at"] = reserve_at;
  if (writable && fill_length > 0) request["fill"] = {fill_offset, fill_length};
  *err = RequestLease(st.st_dev, fd, request, 4, &reply, &fds, &conn);
  if (*err != 0) return nullptr;
  int region = fds[0];
  const int page_fd = fds[2], write_page_fd = fds[3];
  auto v = std::make_shared<ReadView>();
  v->sock = fds[1];
  v->lease = reply.value("lease", uint64_t{0});
  v->size = reply.value("size", uint64_t{0});
  // A daemon from before reservations sends no limit: the view ends at the size. One
  // that sends less than the size is not believed either.
  v->limit = std::max(v->size, writable ? reply.value("limit", v->size) : v->size);
  v->gen = reply.value("gen", uint64_t{0});
  v->writable = writable;
  v->sync = reply.value("sync", false);
  v->fork_generation = ::fork_generation.load();
  // Checked once a view, not once a write past EOF (a system call each): a program that
  // lowers its limit while it writes keeps storing past EOF until its next view.
  v->size_limited = writable && FileSizeLimited();
  const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* words = SysMmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ, MAP_SHARED, page_fd, 0);
  void* write_words = SysMmap(nullptr, UDAX_VIEW_PAGE_SIZE, prot, MAP_SHARED, write_page_fd, 0);
  close(page_fd);
  close(write_page_fd);
  int rc = 0;
  if (words == MAP_FAILED || write_words == MAP_FAILED) {
    rc = -ENOMEM;
  }
  if (words != MAP_FAILED) {
    v->words = static_cast<const uint64_t*>(words);
    madvise(words, UDAX_VIEW_PAGE_SIZE, MADV_DONTFORK);
  }
  if (write_words != MAP_FAILED) {
    v->write_words = static_cast<uint64_t*>(write_words);
    madvise(write_words, UDAX_VIEW_PAGE_SIZE, MADV_DONTFORK);
  }
  const uint64_t align = std::max<uint64_t>(reply.value("map_align", uint64_t{4096}), 4096);
  const bool devdax = reply.value("region_kind", "") == "devdax";
  v->devdax = devdax;
  const uint64_t unit = devdax ? align : static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (v->limit > kMaxViewBytes) v->limit = std::max(v->size, kMaxViewBytes);
  const uint64_t mapped = (v->limit + unit - 1) / unit * unit;
  if (rc == 0 && mapped > kMaxViewBytes) rc = -EFBIG;
  if (rc == 0 && mapped > 0) {
    v->base = ReserveAligned(mapped, align, PROT_READ);
    if (v->base == nullptr) rc = -ENOMEM;
    if (rc == 0) v->mapped = mapped;
    // [[file_offset, phys, length], ...] as asked for ("compact"); a daemon from before
    // that answers with "extents" objects.
    std::vector<std::array<uint64_t, 3>> table;
    if (reply.contains("extent_table")) {
      for (const auto& e : reply["extent_table"]) {
        if (!e.is_array() || e.size() != 3 || !e[0].is_number_unsigned() || !e[1].is_number_unsigned() ||
            !e[2].is_number_unsigned()) {
          rc = -EPROTO;
          break;
        }
        table.push_back({e[0].get<uint64_t>(), e[1].get<uint64_t>(), e[2].get<uint64_t>()});
      }
    } else {
      for (const auto& e : reply["extents"]) {
        table.push_back({e.value("file_offset", uint64_t{0}), e.value("phys", uint64_t{0}),
                         e.value("length", uint64_t{0})});
      }
    }
    for (const auto& [fo, ph, el] : table) {
      if (rc != 0) break;
      if (fo % unit != 0 || fo >= mapped) continue;
      const uint64_t n = std::min<uint64_t>((el + unit - 1) / unit * unit, mapped - fo);
      if (SysMmap(v->base + fo, n, prot, MAP_SHARED | MAP_FIXED, region, ph) == MAP_FAILED) {
        rc = -errno;
      }
      v->extents.push_back({fo, ph, std::min<uint64_t>(el, mapped - fo)});
    }
    std::sort(v->extents.begin(), v->extents.end(),
              [](const ReadView::Extent& a, const ReadView::Extent& b) { return a.file_offset < b.file_offset; });
    // (A write through the descriptor is checked against the file size limit, which a
    // store never is: under one, writes stay stores rather than risk SIGXFSZ.)
    if (rc == 0 && CopyPathFromEnv() != CopyPath::kMap && !(writable && FileSizeLimited())) {
      v->region.store(ShareRegion(st.st_dev, writable, region));
    }
    const bool has_region = v->region.load() != nullptr;
    if (has_region) {
      v->warm_on_reuse = CopyPathFromEnv() == CopyPath::kAuto;
      v->chunk_count = static_cast<size_t>((mapped + (uint64_t{1} << ReadView::kChunkShift) - 1) >> ReadView::kChunkShift);
      v->chunks = std::make_unique<ReadView::Chunk[]>(v->chunk_count);
    }
    if (rc == 0) {
      madvise(v->base, v->mapped, MADV_DONTFORK);
#ifdef MADV_POPULATE_READ
      // Best effort (EFAULT on poison, EINVAL before Linux 5.14): faults do the rest.
      if (!has_region) {
        madvise(v->base, std::min(v->mapped, static_cast<size_t>(kPopulateBytes)), MADV_POPULATE_READ);
      }
#endif
    }
  }
  if (v->region.load() == nullptr || v->chunk_count == 0) v->all_warm.store(true);
  close(region);
  for (const auto& b : reply["bad"]) {
    const uint64_t off = b.value("offset", uint64_t{0});
    v->bad.emplace_back(off, off + b.value("length", uint64_t{0}));
  }
  v->has_bad.store(!v->bad.empty());
  if (rc != 0) {
    *err = rc;
    return nullptr;  // the destructor unmaps and hangs up: the daemon drops the lease
  }
  {
    std::lock_guard<std::mutex> lock(S().mu);
    S().views[v->sock] = v;
  }
  Wake();
  return v;
}

namespace {

// Whether file bytes [off, off+n) (n > 0) are served by the map: their chunks are warm.
bool InMap(const ReadView& v, uint64_t off, size_t n) {
  if (v.all_warm.load(std::memory_order_acquire)) return true;
  for (uint64_t k = off >> ReadView::kChunkShift, last = (off + n - 1) >> ReadView::kChunkShift; k <= last; ++k) {
    if (k >= v.chunk_count || !v.chunks[k].warm.load(std::memory_order_acquire)) return false;
  }
  return true;
}

// A use of a view's region descriptor: fd is -1 when the view has none (any more), and
// the copy is then from the map. While it lives, ClosingDescriptors waits.
class RegionUse {
 public:
  explicit RegionUse(const ReadView& v) : d_(v.region.load()) {
    if (d_ == nullptr) return;
    d_->users.fetch_add(1);  // pairs with ClosingDescriptors's store of `lost`
    ++region_uses_here;
    if (d_->lost.load()) return;
    fd_ = d_->fd.load();
    constexpr uint32_t kCheckEvery = 1024;
    if (fd_ >= 0 && d_->uses.fetch_add(1, std::memory_order_relaxed) % kCheckEvery == kCheckEvery - 1) {
      // Closed by a raw system call and the number reused: never ours again (nor ours
      // to close).
      struct stat st;
      if (fstat(fd_, &st) != 0 || st.st_dev != d_->dev || st.st_ino != d_->ino) {
        d_->lost.store(true);
        d_->fd.store(-1);
        fd_ = -1;
      }
    }
  }
  ~RegionUse() {
    if (d_ == nullptr) return;
    --region_uses_here;
    d_->users.fetch_sub(1);
  }
  RegionUse(const RegionUse&) = delete;
  RegionUse& operator=(const RegionUse&) = delete;
  int fd() const { return fd_; }

 private:
  std::shared_ptr<RegionDescriptor> d_;  // kept open while in use, even past a revoke
  int fd_ = -1;
};

// A read this small costs less from the map, faulting its page in, than by the kernel's
// copy (here: 2.5-2.9 us against 3.2 for 4 KiB); larger ones fault more pages than they
// save. Writes are not: a store into a page not present costs a write fault, and cold
// stores are 0.35x tmpfs from the map against 0.9x through the descriptor.
constexpr size_t kSmallRead = 4096;

// File bytes [off, off+n) were served by the descriptor: the warmer's count.
void NoteCold(ReadView& v, uint64_t off, size_t n) {
  if (!v.warm_on_reuse) return;
  constexpr uint64_t kChunk = uint64_t{1} << ReadView::kChunkShift;
  for (uint64_t pos = off, end = off + n; pos < end;) {
    const uint64_t next = std::min(end, (pos / kChunk + 1) * kChunk);
    NoteColdBytes(v, static_cast<size_t>(pos / kChunk), next - pos);
    pos = next;
  }
}

// Calls fn(from, phys, len) for each piece of file bytes [off, off+n) in order: `from`
// counts from off, and phys is where the piece lies in the region, or kHole. Stops at
// the first piece fn refuses (returns nonzero), and returns what it returned.
constexpr uint64_t kHole = UINT64_MAX;
template <typename Fn>
int ForEachPiece(const ReadView& v, uint64_t off, size_t n, Fn&& fn) {
  auto it = std::upper_bound(v.extents.begin(), v.extents.end(), off,
                             [](uint64_t o, const ReadView::Extent& e) { return o < e.file_offset; });
  if (it != v.extents.begin()) --it;
  const uint64_t end = off + n;
  for (uint64_t pos = off; pos < end;) {
    while (it != v.extents.end() && it->file_offset + it->length <= pos) ++it;
    uint64_t piece_end = end, phys = kHole;
    if (it != v.extents.end() && it->file_offset <= pos) {
      piece_end = std::min(end, it->file_offset + it->length);
      phys = it->phys + (pos - it->file_offset);
    } else if (it != v.extents.end()) {
      piece_end = std::min(end, it->file_offset);
    }
    if (int r = fn(pos - off, phys, piece_end - pos); r != 0) return r;
    pos = piece_end;
  }
  return 0;
}

// Moves file bytes [off, off+n) between `mem` and the region's descriptor: a pread
// into mem (holes read as zeros) or, `store`, a pwrite from it (all of it allocated: the
// caller checked). 0, or -EIO (poison, maybe: a read then copies from the map, whose
// guard finds the bad unit). errno is left as it was.
int CopyRegion(const ReadView& v, int fd, bool store, uint8_t* mem, uint64_t off, size_t n) {
  const int saved = errno;
  const int r = ForEachPiece(v, off, n, [&](uint64_t from, uint64_t phys, uint64_t len) {
    if (phys == kHole && store) return -EIO;  // not ours to allocate
    if (phys == kHole) {
      memset(mem + from, 0, len);
      return 0;
    }
    while (len > 0) {
      const ssize_t moved = syscall(store ? SYS_pwrite64 : SYS_pread64, fd, mem + from, len, phys);
      if (moved < 0 && errno == EINTR) continue;
      if (moved <= 0) return -EIO;  // EFAULT too: a DAX read that hit poison before a byte
      from += moved, phys += moved, len -= moved;
    }
    return 0;
  });
  errno = saved;
  return r;
}

}  // namespace

uint64_t ViewSize(const ReadView& view, bool* beyond) {
  const uint64_t published = __atomic_load_n(view.write_words + UDAX_WRITE_PAGE_SIZE_OFFSET / 8, __ATOMIC_ACQUIRE);
  *beyond = published > view.limit;
  return published > view.size ? std::min(published, view.limit) : view.size;
}

ssize_t ReadFromView(ReadView& view, void* buf, size_t n, uint64_t off) {
  if (!ViewUsable(view)) return kUseKernel;
  if (n == 0) return 0;
  // Bytes another view stored past what this one reaches: FUSE has them (and the size).
  bool beyond = false;
  const uint64_t size = ViewSize(view, &beyond);
  if (beyond && off + n > size) return kUseKernel;
  if (off >= size) return 0;
  n = static_cast<size_t>(std::min<uint64_t>(n, size - off));
  if (view.has_bad.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(view.bad_mu);
    for (const auto& [s, e] : view.bad) {
      if (s >= off + n || e <= off) continue;
      if (s <= off) return -EIO;
      n = static_cast<size_t>(s - off);  // up to the bad range: a short read
    }
  }
  const uint64_t* begin = view.write_words + UDAX_WRITE_PAGE_BEGIN_OFFSET / 8;
  const uint64_t* end = view.write_words + UDAX_WRITE_PAGE_END_OFFSET / 8;
  const uint64_t* gen = view.words + UDAX_VIEW_GEN_OFFSET / 8;
  // A seqlock read (fs/core/view_page.h): an in-place store that overlapped the copy
  // makes it go again; a change of what the view shows makes it void.
  for (int tries = 0; tries < 1000; ++tries) {
    const uint64_t before = __atomic_load_n(begin, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(end, __ATOMIC_ACQUIRE) != before) {
      __builtin_ia32_pause();  // a store is in flight
      continue;
    }
    // A cold chunk by the kernel's copy (read_view.h); poison under it is found again
    // by the map's guard, which narrows it.
    CopyResult c;
    if (InMap(view, off, n) || (view.warm_on_reuse && n <= kSmallRead)) {
      c = SafeCopy(buf, view.base + off, n);
    } else {
      RegionUse region(view);
      const int e = region.fd() < 0 ? -EIO : CopyRegion(view, region.fd(), false, static_cast<uint8_t*>(buf), off, n);
      if (e != 0) c = SafeCopy(buf, view.base + off, n);
      if (e == 0) NoteCold(view, off, n);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(gen, __ATOMIC_RELAXED) != view.gen) return kUseKernel;
    if (!c.faulted) {
      if (__atomic_load_n(begin, __ATOMIC_RELAXED) != before) continue;
      return static_cast<ssize_t>(n);
    }
    // The caller's buffer: the kernel's read says EFAULT (or reads short), as without us.
    if (c.program_fault) return kUseKernel;
    if (view.revoked.load() || (c.si_code != BUS_MCEERR_AR && c.si_code != BUS_MCEERR_AO)) {
      return kUseKernel;  // revoked under the copy (or the region is gone)
    }
    // Poison: its unit (the kernel's si_addr_lsb: a page, or 2 MiB on devdax) is bad from
    // now on, in this view; the bytes before it are good.
    uint64_t unit = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (c.addr_lsb > 0 && c.addr_lsb < 40) unit = std::max<uint64_t>(unit, uint64_t{1} << c.addr_lsb);
    const uint64_t bad_start = (off + c.fault_offset) / unit * unit;
    {
      std::lock_guard<std::mutex> lock(view.bad_mu);
      view.bad.emplace_back(bad_start, bad_start + unit);
      view.has_bad.store(true, std::memory_order_release);
    }
    if (bad_start <= off) return -EIO;
    return ReadFromView(view, buf, static_cast<size_t>(bad_start - off), off);
  }
  return kUseKernel;  // writes kept overlapping: FUSE takes the file's lock
}

void SettleView(ReadView& view) {
  if (view.fork_generation != ::fork_generation.load()) return;  // a parent's
  RevokeView(&view);  // no store through it from here on (those in flight end first)
  // Said before it is asked: the daemon reads the acknowledgement when it revokes.
  if (view.writable && view.sock >= 0) SendJson(view.sock, {{"ack", view.lease}});
}

bool AllAllocated(const ReadView& view, uint64_t off, uint64_t end) {
  return ForEachPiece(view, off, end - off, [](uint64_t, uint64_t phys, uint64_t) { return phys == kHole ? 1 : 0; }) == 0;
}

namespace {

// Makes [off, off+n) of an image's view durable now (O_DSYNC, -o sync): 0 or -errno.
int PersistRange(ReadView& view, uint64_t off, size_t n) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t a = off / page * page;
  return syscall(SYS_msync, view.base + a, off + n - a, MS_SYNC) == 0 ? 0 : -EIO;
}

}  // namespace

ssize_t WriteToView(ReadView& view, const void* buf, size_t n, uint64_t off, bool durable) {
  if (!view.writable || n == 0 || off > view.limit || n > view.limit - off) return kUseKernel;
  // Past the size, into space reserved past EOF: the size the write page publishes moves
  // with it, but is not durable before the next fsync -- not what O_DSYNC promises -- and
  // RLIMIT_FSIZE is the kernel's to enforce (SIGXFSZ).
  bool beyond = false;
  if (off + n > ViewSize(view, &beyond) && (durable || view.sync || view.size_limited)) return kUseKernel;
  if (!AllAllocated(view, off, off + n)) return kUseKernel;  // a hole: FUSE allocates
  if (view.has_bad.load(std::memory_order_acquire)) {
    // A write over bad media moves it (whole units) or fails: the daemon's to decide.
    std::lock_guard<std::mutex> lock(view.bad_mu);
    for (const auto& [s, e] : view.bad) {
      if (s < off + n && e > off) return kUseKernel;
    }
  }
  // In chunks, each its own bracketed store, so that no store stays open long: a revoke
  // waits for the one in flight (and kills a holder that takes longer than the daemon's
  // deadline). The source of a chunk is touched before the store opens: faulting it in
  // may need a FUSE read of this very file (a private map of it), which must not find
  // our store open. A source that cannot be read goes to the kernel, whose write says
  // EFAULT (or is short), where a plain load would crash the program.
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto* src = static_cast<const unsigned char*>(buf);
  size_t done = 0;
  while (done < n) {
    const size_t len = std::min(kChunk, n - done);
    if (!ProbeReadable(src + done, len)) return done > 0 ? static_cast<ssize_t>(done) : kUseKernel;
    // The revoke's drain and this check pair up (both sequentially consistent): either
    // the listener sees us in flight and waits, or we see `revoked` and store nothing.
    view.inflight.fetch_add(1);
    if (view.revoked.load() || view.fork_generation != ::fork_generation.load(std::memory_order_relaxed)) {
      view.inflight.fetch_sub(1);
      return done > 0 ? static_cast<ssize_t>(done) : kUseKernel;
    }
    uint64_t* words = view.write_words;
    __atomic_fetch_add(words + UDAX_WRITE_PAGE_BEGIN_OFFSET / 8, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    CopyResult c;
    if (InMap(view, off + done, len)) {
      c = SafeStore(view.base + off + done, src + done, len);
    } else {
      RegionUse region(view);
      if (region.fd() < 0) {
        c = SafeStore(view.base + off + done, src + done, len);
      } else if (CopyRegion(view, region.fd(), true, const_cast<uint8_t*>(src + done), off + done, len) != 0) {
        c.faulted = true;  // not poison (si_code 0): FUSE writes the range again
      } else {
        NoteCold(view, off + done, len);
      }
    }
    __builtin_ia32_sfence();  // a large memcpy may use non-temporal stores: before END
    if (!c.faulted) {  // (a faulted chunk is written again through FUSE, which sizes it)
      // Past EOF: the new size, inside the bracket (the daemon's copies of these bytes wait
      // for END) and after the bytes (stat never shows a size whose bytes are not there).
      const uint64_t stored_end = off + done + len;
      uint64_t* size_word = words + UDAX_WRITE_PAGE_SIZE_OFFSET / 8;
      uint64_t seen = __atomic_load_n(size_word, __ATOMIC_ACQUIRE);
      while (stored_end > view.size && stored_end > seen &&
             !__atomic_compare_exchange_n(size_word, &seen, stored_end, true, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
      }
    }
    __atomic_fetch_add(words + UDAX_WRITE_PAGE_END_OFFSET / 8, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(words + UDAX_WRITE_PAGE_WRITES_OFFSET / 8, 1, __ATOMIC_RELAXED);
    if (c.faulted) {
      // Poison under the store (a revoked view cannot fault: its revoke waits for us).
      // The bytes before it are in; FUSE writes the range again and moves or refuses
      // the bad unit.
      if (c.si_code == BUS_MCEERR_AR || c.si_code == BUS_MCEERR_AO) {
        uint64_t unit = static_cast<uint64_t>(page);
        if (c.addr_lsb > 0 && c.addr_lsb < 40) unit = std::max<uint64_t>(unit, uint64_t{1} << c.addr_lsb);
        const uint64_t bad_start = (off + done + c.fault_offset) / unit * unit;
        std::lock_guard<std::mutex> lock(view.bad_mu);
        view.bad.emplace_back(bad_start, bad_start + unit);
        view.has_bad.store(true, std::memory_order_release);
      }
      view.inflight.fetch_sub(1);
      return done > 0 ? static_cast<ssize_t>(done) : kUseKernel;
    }
    const bool flush_now = durable || view.sync;
    if (!flush_now && view.devdax) {
      std::lock_guard<std::mutex> lock(view.dirty_mu);
      view.dirty_lo = std::min<uint64_t>(view.dirty_lo, off + done);
      view.dirty_hi = std::max<uint64_t>(view.dirty_hi, off + done + len);
    }
    // Both flushes go through our mapping, so inflight is still held; the bracket is
    // closed already, so readers do not wait for them.
    int persisted = 0;
    if (flush_now && view.devdax) pmem_persist(view.base + off + done, len);
    if (flush_now && !view.devdax) persisted = PersistRange(view, off + done, len);
    view.inflight.fetch_sub(1);
    if (persisted != 0) return done > 0 ? static_cast<ssize_t>(done) : persisted;
    done += len;
  }
  return static_cast<ssize_t>(n);
}

int PersistView(ReadView& view) {
  if (!view.writable || !view.devdax) return 0;  // an image's page cache: the daemon's fsync
  view.inflight.fetch_add(1);
  if (view.revoked.load()) {
    view.inflight.fetch_sub(1);
    return static_cast<int>(kUseKernel);  // the revoke flushed it
  }
  FlushDirty(&view);
  view.inflight.fetch_sub(1);
  return 0;
}

}  // namespace udax_client
