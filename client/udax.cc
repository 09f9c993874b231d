// udax.cc -- libudax: direct maps of udaxfs files (include/udaxfs/udax.h).
//
// One control connection per mount (keyed by st_dev), one listener thread per process
// polling every lease socket. Requests and their replies on a control connection are
// serialized by its mutex; the listener never takes it, so a revoke is answered even
// while another thread waits for a map reply.
#include "include/udaxfs/udax.h"

#include "client/read_view.h"
#include "client/safe_copy.h"

#include <fcntl.h>
#include <libpmem.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
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
void BeforeFork() { S().mu.lock(); }
void AfterForkParent() { S().mu.unlock(); }
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
// with the region's descriptor and the lease socket in *fds, or -errno.
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
  if (!reply->value("ok", false) || fds->size() != want_fds) {
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
  const int err = RequestLease(st.st_dev, fd,
                               {{"op", "map"}, {"offset", static_cast<uint64_t>(offset)},
                                {"length", static_cast<uint64_t>(length)}, {"prot", writable ? "rw" : "r"}},
                               2, &reply, &fds, &conn);
  if (err != 0) return err;
  const int region = fds[0], lease_sock = fds[1];
  const uint64_t align = std::max<uint64_t>(reply.value("map_align", uint64_t{4096}), 4096);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // A devdax device maps only in whole units of its alignment (2 MiB): the map covers the
  // whole allocation units under [offset, offset+length), which belong to this file.
  const bool devdax = reply.value("region_kind", "") == "devdax";
  const uint64_t unit = devdax ? align : page;
  if (offset % unit != 0) {
    close(region);
    close(lease_sock);
    return -EINVAL;
  }
  const size_t len = (length + unit - 1) / unit * unit;
  // A contiguous stretch of address space, aligned so devdax can use huge pages.
  uint8_t* base = ReserveAligned(len, align, PROT_NONE);
  if (base == nullptr) {
    close(region);
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
    if (SysMmap(base + (s - offset), t - s, mprot, MAP_SHARED | MAP_FIXED, region, ph + (s - fo)) == MAP_FAILED) {
      rc = -errno;
      break;
    }
  }
  close(region);
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

bool ViewUsable(const ReadView& view) {
  return !view.revoked.load(std::memory_order_relaxed) &&
         view.fork_generation == ::fork_generation.load(std::memory_order_relaxed) &&
         __atomic_load_n(view.words + UDAX_VIEW_GEN_OFFSET / 8, __ATOMIC_ACQUIRE) == view.gen;
}

std::shared_ptr<ReadView> OpenView(int fd, bool writable, int* err) {
  // The largest file a view shows: address space is finite (128 TiB), files need not be.
  constexpr uint64_t kMaxViewBytes = uint64_t{1} << 40;
  // How much of a view is made present at once (MADV_POPULATE_READ), instead of a page
  // fault per 4 KiB on first reads.
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
  nlohmann::json request = {{"op", "view"}};
  if (writable) request["prot"] = "rw";
  *err = RequestLease(st.st_dev, fd, request, 4, &reply, &fds, &conn);
  if (*err != 0) return nullptr;
  const int region = fds[0], page_fd = fds[2], write_page_fd = fds[3];
  auto v = std::make_shared<ReadView>();
  v->sock = fds[1];
  v->lease = reply.value("lease", uint64_t{0});
  v->size = reply.value("size", uint64_t{0});
  v->gen = reply.value("gen", uint64_t{0});
  v->writable = writable;
  v->sync = reply.value("sync", false);
  v->fork_generation = ::fork_generation.load();
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
  const uint64_t mapped = (v->size + unit - 1) / unit * unit;
  if (rc == 0 && mapped > kMaxViewBytes) rc = -EFBIG;
  if (rc == 0 && mapped > 0) {
    v->base = ReserveAligned(mapped, align, PROT_READ);
    if (v->base == nullptr) rc = -ENOMEM;
    if (rc == 0) v->mapped = mapped;
    for (const auto& e : reply["extents"]) {
      if (rc != 0) break;
      const uint64_t fo = e.value("file_offset", uint64_t{0}), ph = e.value("phys", uint64_t{0});
      const uint64_t el = e.value("length", uint64_t{0});
      if (fo % unit != 0 || fo >= mapped) continue;
      const uint64_t n = std::min<uint64_t>((el + unit - 1) / unit * unit, mapped - fo);
      if (SysMmap(v->base + fo, n, prot, MAP_SHARED | MAP_FIXED, region, ph) == MAP_FAILED) {
        rc = -errno;
      }
      v->allocated.emplace_back(fo, fo + std::min<uint64_t>(el, mapped - fo));
    }
    if (rc == 0) {
      madvise(v->base, v->mapped, MADV_DONTFORK);
#ifdef MADV_POPULATE_READ
      // Best effort (EFAULT on poison, EINVAL before Linux 5.14): faults do the rest.
      madvise(v->base, std::min(v->mapped, static_cast<size_t>(kPopulateBytes)), MADV_POPULATE_READ);
#endif
    }
  }
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

ssize_t ReadFromView(ReadView& view, void* buf, size_t n, uint64_t off) {
  if (!ViewUsable(view)) return kUseKernel;
  if (off >= view.size || n == 0) return 0;
  n = static_cast<size_t>(std::min<uint64_t>(n, view.size - off));
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
    CopyResult c = SafeCopy(buf, view.base + off, n);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(gen, __ATOMIC_RELAXED) != view.gen) return kUseKernel;
    if (!c.faulted) {
      if (__atomic_load_n(begin, __ATOMIC_RELAXED) != before) continue;
      return static_cast<ssize_t>(n);
    }
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

namespace {

// Whether file bytes [off, end) are all allocated in the view (no hole to fill).
bool AllAllocated(const ReadView& view, uint64_t off, uint64_t end) {
  auto it = std::upper_bound(view.allocated.begin(), view.allocated.end(), std::make_pair(off, UINT64_MAX));
  if (it == view.allocated.begin()) return false;
  --it;
  // Extents are sorted and do not overlap; adjacent ones continue the run.
  while (it != view.allocated.end() && it->first <= off) {
    if (it->second >= end) return true;
    off = std::max(off, it->second);
    ++it;
  }
  return false;
}

// Makes [off, off+n) of an image's view durable now (O_DSYNC, -o sync): 0 or -errno.
int PersistRange(ReadView& view, uint64_t off, size_t n) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t a = off / page * page;
  return syscall(SYS_msync, view.base + a, off + n - a, MS_SYNC) == 0 ? 0 : -EIO;
}

}  // namespace

ssize_t WriteToView(ReadView& view, const void* buf, size_t n, uint64_t off, bool durable) {
  if (!view.writable || n == 0 || off > view.size || n > view.size - off) return kUseKernel;
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
  // our store open.
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto* src = static_cast<const unsigned char*>(buf);
  size_t done = 0;
  while (done < n) {
    const size_t len = std::min(kChunk, n - done);
    for (size_t p = 0; p < len; p += page) (void)*static_cast<const volatile unsigned char*>(src + done + p);
    (void)*static_cast<const volatile unsigned char*>(src + done + len - 1);
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
    CopyResult c = SafeStore(view.base + off + done, src + done, len);
    __builtin_ia32_sfence();  // a large memcpy may use non-temporal stores: before END
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
