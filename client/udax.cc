// udax.cc -- libudax: direct maps of udaxfs files (include/udaxfs/udax.h).
//
// One control connection per mount (keyed by st_dev), one listener thread per process
// polling every lease socket. Requests and their replies on a control connection are
// serialized by its mutex; the listener never takes it, so a revoke is answered even
// while another thread waits for a map reply.
#include "include/udaxfs/udax.h"

#include <fcntl.h>
#include <libpmem.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

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

bool SendJson(int fd, const nlohmann::json& j, int pass_fd = -1) {
  const std::string out = j.dump();
  std::vector<int> fds;
  if (pass_fd >= 0) fds.push_back(pass_fd);
  return udax::SendPacket(fd, out, fds, 0) == static_cast<ssize_t>(out.size());
}

// One packet and the descriptors that came with it (closed when `fds` is null, or when the
// packet is not a whole JSON message).
bool RecvJson(int fd, nlohmann::json* out, std::vector<int>* fds) {
  udax::ReceivedPacket packet;
  const ssize_t n = udax::RecvPacket(fd, 0, &packet);
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

void Listen() {
  State& s = S();
  while (true) {
    std::vector<pollfd> fds = {{s.wake, POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(s.mu);
      for (const auto& [a, m] : s.maps) {
        if (m.sock >= 0) fds.push_back({m.sock, POLLIN, 0});
      }
    }
    if (!udax::PollRetrying(fds, -1).ok()) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!read(s.wake, &v, sizeof(v));
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      nlohmann::json msg;
      const bool got = (fds[i].revents & POLLIN) && RecvJson(fds[i].fd, &msg, nullptr);
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

// REQUIRES S().mu.
int StartListenerLocked() {
  State& s = S();
  if (s.listener) return 0;
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
  // A connection the daemon closed as idle fails the first request: once more on a new one.
  for (int attempt = 0;; ++attempt) {
    int err = 0;
    conn = Connect(st.st_dev, &err);
    if (!conn) return err;
    std::lock_guard<std::mutex> lock(conn->mu);
    if (SendJson(conn->fd, {{"op", "map"}, {"offset", static_cast<uint64_t>(offset)},
                            {"length", static_cast<uint64_t>(length)}, {"prot", writable ? "rw" : "r"}},
                 fd) &&
        RecvJson(conn->fd, &reply, &fds)) {
      break;
    }
    for (int f : fds) close(f);
    fds.clear();
    Disconnect(st.st_dev, conn);
    if (attempt == 1) return -ENOTCONN;
  }
  if (!reply.value("ok", false) || fds.size() != 2) {
    for (int f : fds) close(f);
    const int e = reply.value("errno", EIO);
    return -(e > 0 ? e : EIO);
  }
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
  void* raw = SysMmap(nullptr, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    close(region);
    close(lease_sock);
    return -ENOMEM;
  }
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + align - 1) / align * align);
  if (base > raw) SysMunmap(raw, base - static_cast<uint8_t*>(raw));
  SysMunmap(base + len, static_cast<uint8_t*>(raw) + len + align - (base + len));
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
    if (m.sock >= 0) close(m.sock);  // the listener drops it at its next wake
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
