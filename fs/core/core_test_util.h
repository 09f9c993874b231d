// core_test_util.h -- shared fixtures for the core tests: a fresh emulated image.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "fs/base/status_testing.h"
#include "fs/core/filesystem.h"

namespace udax {

// A formatted image file in /dev/shm (tmpfs), removed at destruction.
class TestImage {
 public:
  // journal_size 0 = mkfs's choice; tests of multi-transaction operations ask for less.
  // meta_copies: mkfs's default (on); tests that count free AUs one by one, or craft
  // metadata on media with one copy, ask for an image without.
  explicit TestImage(uint64_t size = 64ull << 20, uint64_t au = kAuSize4K,
                     uint64_t journal_size = 0, bool meta_copies = true);
  ~TestImage();
  const std::string& path() const { return path_; }
  std::unique_ptr<Filesystem> Mount(MountOptions options = {});

 private:
  std::string path_;
};

// A tree with one of every metadata kind that has copies: a directory "d" of 300 names
// (several buckets), a fragmented file "frag" (40 extents, so extent blocks) with a
// 6000-byte attribute blob "user.big", and a 500-byte symlink "sym" (out of line).
struct CopiedKindsTree {
  uint64_t dir = 0, frag = 0, sym = 0;
};
CopiedKindsTree PopulateCopiedKinds(Filesystem* fs);

}  // namespace udax
