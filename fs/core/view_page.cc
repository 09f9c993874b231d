// view_page.cc -- ViewPage (view_page.h).
#include "fs/core/view_page.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "include/udaxfs/control.h"

namespace udax {

static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free,
              "the client reads the words as plain 64-bit atomics");

namespace {

std::atomic<uint64_t>* Word(void* page, size_t offset) {
  return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(page) + offset);
}

// A page-sized memfd, mapped here read-write, its words zero.
Result<std::pair<UniqueFd, void*>> MakePage(const char* name) {
  UniqueFd fd(static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (fd.get() < 0) return Status::Error(errno, std::string("memfd_create: ") + strerror(errno));
  if (ftruncate(fd.get(), UDAX_VIEW_PAGE_SIZE) != 0) {
    return Status::Error(errno, std::string(name) + ": " + strerror(errno));
  }
  void* page = mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (page == MAP_FAILED) return Status::Error(errno, std::string(name) + " mmap: " + strerror(errno));
  return std::make_pair(std::move(fd), page);
}

}  // namespace

ViewPage::ViewPage(UniqueFd fd, void* page, UniqueFd write_fd, void* write_page)
    : fd_(std::move(fd)),
      page_(page),
      gen_(Word(page, UDAX_VIEW_GEN_OFFSET)),
      write_fd_(std::move(write_fd)),
      write_page_(write_page),
      begin_(Word(write_page, UDAX_WRITE_PAGE_BEGIN_OFFSET)),
      end_(Word(write_page, UDAX_WRITE_PAGE_END_OFFSET)),
      writes_(Word(write_page, UDAX_WRITE_PAGE_WRITES_OFFSET)),
      size_(Word(write_page, UDAX_WRITE_PAGE_SIZE_OFFSET)) {}

ViewPage::~ViewPage() {
  Invalidate();  // holders keep their mapping of the page: what they hold is void now
  munmap(page_, UDAX_VIEW_PAGE_SIZE);
  munmap(write_page_, UDAX_VIEW_PAGE_SIZE);
}

Result<std::unique_ptr<ViewPage>> ViewPage::Create() {
  UDAX_ASSIGN_OR_RETURN(auto view, MakePage("udax-view"));
  auto made = MakePage("udax-view-writes");
  if (!made.ok()) {
    munmap(view.second, UDAX_VIEW_PAGE_SIZE);
    return made.status();
  }
  auto write = std::move(*made);
  new (Word(view.second, UDAX_VIEW_GEN_OFFSET)) std::atomic<uint64_t>(1);
  auto out = std::unique_ptr<ViewPage>(
      new ViewPage(std::move(view.first), view.second, std::move(write.first), write.second));
  // Every holder of every view of the file trusts the generation: once our own mapping
  // exists, no one may write it again -- not a holder that reopens the memfd read-write
  // through /proc (F_SEAL_FUTURE_WRITE, Linux 5.1), nor resize it under our stores.
  if (fcntl(out->fd(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return Status::Error(errno, std::string("sealing the view page: ") + strerror(errno));
  }
  // The write page is written by writable views, so it cannot be sealed against writes:
  // its mode keeps read-only holders from reopening it read-write, and a fixed size keeps
  // any holder from truncating it under our own accesses (which would SIGBUS here).
  if (fchmod(out->write_fd(), 0600) != 0 ||
      fcntl(out->write_fd(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return Status::Error(errno, std::string("sealing the write page: ") + strerror(errno));
  }
  return out;
}

}  // namespace udax
