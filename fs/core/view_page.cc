// view_page.cc -- ViewPage (view_page.h).
#include "fs/core/view_page.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "include/udaxfs/control.h"

namespace udax {

static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free,
              "the client reads the words as plain 64-bit atomics");

ViewPage::ViewPage(UniqueFd fd, void* page)
    : fd_(std::move(fd)),
      page_(page),
      seq_(reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(page) + UDAX_VIEW_SEQ_OFFSET)),
      gen_(reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(page) + UDAX_VIEW_GEN_OFFSET)) {}

ViewPage::~ViewPage() {
  Invalidate();  // holders keep their mapping of the page: what they hold is void now
  munmap(page_, UDAX_VIEW_PAGE_SIZE);
}

Result<std::unique_ptr<ViewPage>> ViewPage::Create() {
  UniqueFd fd(static_cast<int>(syscall(SYS_memfd_create, "udax-view", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (fd.get() < 0) return Status::Error(errno, std::string("memfd_create: ") + strerror(errno));
  if (ftruncate(fd.get(), UDAX_VIEW_PAGE_SIZE) != 0) {
    return Status::Error(errno, std::string("view page: ") + strerror(errno));
  }
  void* page = mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (page == MAP_FAILED) return Status::Error(errno, std::string("view page mmap: ") + strerror(errno));
  new (static_cast<char*>(page) + UDAX_VIEW_SEQ_OFFSET) std::atomic<uint64_t>(0);
  new (static_cast<char*>(page) + UDAX_VIEW_GEN_OFFSET) std::atomic<uint64_t>(1);
  auto out = std::unique_ptr<ViewPage>(new ViewPage(std::move(fd), page));
  // Every holder of every view of the file trusts these words: once our own mapping
  // exists, no one may write them again -- not a holder that reopens the memfd read-write
  // through /proc (F_SEAL_FUTURE_WRITE, Linux 5.1), nor resize it under our stores.
  if (fcntl(out->fd(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return Status::Error(errno, std::string("sealing the view page: ") + strerror(errno));
  }
  return out;
}

}  // namespace udax
