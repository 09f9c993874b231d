// preload.cc -- libudax-preload.so: direct maps for unmodified programs.
//
//   LD_PRELOAD=/usr/local/lib/libudax-preload.so fio --ioengine=mmap ...
//
// A shared mmap(2) of a file on a udaxfs mount (one whose daemon has a control socket)
// becomes a direct map (udax_map), so loads and stores reach the region without FUSE;
// munmap(2) of such a map gives the lease back and msync(2) persists through libudax.
// Everything else -- private maps, anonymous memory, files elsewhere, a map the daemon
// refuses (no permission on the image: the program gets an ordinary FUSE mmap) -- goes
// to the kernel unchanged. The library's own mappings use raw system calls, so the shim
// never recurses into itself.
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <string>

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

}  // extern "C"
