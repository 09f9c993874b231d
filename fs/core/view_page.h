// view_page.h -- the words a file's views check (issue 21).
//
// A read view (fs/fuse/lease_table.h) lets a client copy file bytes straight out of the
// region, without the file's lock, and a writable view lets it store overwrites the same
// way. What keeps such copies honest is two memfd pages per file that has had a view
// (layout in include/udaxfs/control.h):
//  - the view page, shared read-only with every holder and sealed: `gen` moves before
//    anything a view shows changes -- blocks freed or moved, an allocation, the size --
//    so a copy that ends after the change started is thrown away (the client checks it
//    after the copy). Read views are not waited for: a stopped reader stalls nobody;
//  - the write page: `begin` and `end` count in-place stores into the file's blocks,
//    the daemon's overwrites and writable views' alike (+1 before, +1 after), so a copy
//    that overlapped one is done again: a read never sees half a write, as FUSE reads
//    (which take the file's lock) never do. Writable views hold it read-write (they may
//    write the whole region anyway: that needs write permission on it), read views
//    read-only; its mode is 0600, so nobody reopens it wider through /proc. `writes`
//    counts writable views' stores, so the daemon can stamp mtime without a round trip
//    per write (TakeWrites). `size` is the end of the furthest store past the file's size
//    (writes past EOF into space reserved for the views, issue 21): the daemon folds it
//    into the size lazily, never past the limit it granted (Filesystem::FoldViewSize).
//    The daemon trusts none of these words: it only adds to them, and clamps `size`.
// The usual seqlock fences pair the writers' stores with the readers' loads.
//
// Thread-safety: Invalidate is called with the file's rw lock held exclusive; Begin/
// EndWrite with it exclusive too (FUSE overwrites), but they are atomic adds that
// clients make concurrently anyway; TakeWrites under mu_.
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

  int fd() const { return fd_.get(); }              // the view page (holders: read-only)
  int write_fd() const { return write_fd_.get(); }  // the write page
  uint64_t gen() const { return gen_->load(std::memory_order_acquire); }
  // Views granted before this call are void from now on.
  void Invalidate() {
    gen_->fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // before any store it guards
  }
  // Around stores into the file's blocks in place.
  void BeginWrite() {
    begin_->fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  void EndWrite() { end_->fetch_add(1, std::memory_order_release); }
  // A reader's side of the write page's seqlock, for the daemon's own copies: ReadBegin
  // waits (a bounded spin) for no store to be in flight and sets the count to pass to
  // ReadRetry after the copy, which says whether a store began since (copy again). False
  // when a store stayed in flight (a writer preempted inside its store): no copy now.
  bool ReadBegin(uint64_t* begin) const {
    for (int spins = 0; spins < 1000; ++spins) {
      *begin = begin_->load(std::memory_order_acquire);
      if (end_->load(std::memory_order_acquire) == *begin) return true;
      __builtin_ia32_pause();
    }
    return false;
  }
  bool ReadRetry(uint64_t begin) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    return begin_->load(std::memory_order_relaxed) != begin;
  }
  // The last writable view ended (REQUIRES rw exclusive, so no daemon store is open): a
  // holder that died inside a store left `begin` ahead of `end`, which would make every
  // copy of the file wait and lose from now on. Closes it.
  // Returns whether there was one (its bytes may lie past EOF, unannounced).
  bool CloseAbandonedStores() {
    const uint64_t begun = begin_->load(std::memory_order_acquire);
    return end_->exchange(begun, std::memory_order_acq_rel) != begun;
  }
  // The end of the furthest store past the size that writable views made (0: none since
  // the last reset). Untrusted: callers clamp it.
  uint64_t published_size() const { return size_->load(std::memory_order_acquire); }
  // Every view is revoked and the word folded: a new size starts from the daemon's.
  void ResetPublishedSize() { size_->store(0, std::memory_order_release); }
  // Whether writable views stored since the last call (their count moved).
  bool TakeWrites() {
    const uint64_t now = writes_->load(std::memory_order_acquire);
    if (now == writes_seen_) return false;
    writes_seen_ = now;
    return true;
  }

 private:
  ViewPage(UniqueFd fd, void* page, UniqueFd write_fd, void* write_page);
  UniqueFd fd_;
  void* page_;
  std::atomic<uint64_t>* gen_;
  UniqueFd write_fd_;
  void* write_page_;
  std::atomic<uint64_t>* begin_;
  std::atomic<uint64_t>* end_;
  std::atomic<uint64_t>* writes_;
  std::atomic<uint64_t>* size_;
  uint64_t writes_seen_ = 0;
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
