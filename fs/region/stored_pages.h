// stored_pages.h -- which 4 KiB pages of an emulated image are known to hold storage.
//
// An emulated region writes data with pwrite on the image, which costs no page fault in
// the daemon, and a pwrite that finds tmpfs full says ENOSPC where a store would SIGBUS
// (and be taken for bad media). But a pwrite is a system call, and the journal's small
// metadata writes (a commit writes six or seven ranges of a few dozen bytes) do not need
// one once their page exists: a store to a page the image already holds cannot fail for
// want of space, and its page-table entry, made once, is reused by every later commit.
// So a small write takes the mapping when every page it touches is marked here, and the
// descriptor otherwise; every write through the descriptor marks its pages, and a punched
// page is unmarked. A page lost behind our back (the image cut short) still faults as
// lost media would. Thread-safe: atomic words, no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace udax {

class StoredPages {
 public:
  static constexpr uint64_t kPage = 4096;

  // Tracks an image of `bytes` bytes, no page marked.
  void Reset(uint64_t bytes);
  // Whether every page touching [off, off+n) is marked.
  bool All(uint64_t off, uint64_t n) const;
  // Marks every page touching [off, off+n).
  void Mark(uint64_t off, uint64_t n);
  // Unmarks every page wholly inside [off, off+n).
  void Clear(uint64_t off, uint64_t n);

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  uint64_t pages_ = 0;
};

}  // namespace udax
