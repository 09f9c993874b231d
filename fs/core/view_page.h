// view_page.h -- the two words a file's read views check (issue 21).
//
// A read view (fs/fuse/lease_table.h) lets a client copy file bytes straight out of the
// region, without the file's lock. What keeps such a copy honest is this page, one per
// file that has had a view, shared read-only with every view holder (a memfd the daemon
// sends with the view; layout in include/udaxfs/control.h):
//  - `gen` moves before anything a view shows changes -- blocks freed or moved, an
//    allocation, the size -- so a copy that ends after the change started is thrown
//    away (the client checks it after the copy). No acknowledgement is waited for: a
//    stopped reader stalls nobody and is never killed for it;
//  - `seq` is odd while the daemon stores into the file's blocks in place (an overwrite),
//    so a copy that overlapped one is done again: a read never sees half a write, as
//    FUSE reads (which take the file's lock) never do.
// The usual seqlock fences pair the daemon's stores with the client's loads.
//
// Thread-safety: Invalidate and Begin/EndWrite are called with the file's rw lock held
// exclusive (the changes they bracket need it), so they never race with each other.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "fs/base/status.h"
#include "fs/base/unique_fd.h"

namespace udax {

class ViewPage {
 public:
  static Result<std::unique_ptr<ViewPage>> Create();
  ~ViewPage();
  ViewPage(const ViewPage&) = delete;
  ViewPage& operator=(const ViewPage&) = delete;

  int fd() const { return fd_.get(); }  // what a view holder maps (read-only)
  uint64_t gen() const { return gen_->load(std::memory_order_acquire); }
  // Views granted before this call are void from now on.
  void Invalidate() {
    gen_->fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // before any store it guards
  }
  // Around stores into the file's blocks in place.
  void BeginWrite() {
    seq_->fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  void EndWrite() { seq_->fetch_add(1, std::memory_order_release); }

 private:
  ViewPage(UniqueFd fd, void* page);
  UniqueFd fd_;
  void* page_;
  std::atomic<uint64_t>* seq_;
  std::atomic<uint64_t>* gen_;
};

// Begin/EndWrite around a scope, when the file has a page.
class ViewWriteScope {
 public:
  explicit ViewWriteScope(ViewPage* page) : page_(page) {
    if (page_ != nullptr) page_->BeginWrite();
  }
  ~ViewWriteScope() {
    if (page_ != nullptr) page_->EndWrite();
  }
  ViewWriteScope(const ViewWriteScope&) = delete;
  ViewWriteScope& operator=(const ViewWriteScope&) = delete;

 private:
  ViewPage* page_;
};

}  // namespace udax
