// core_test_util.cc -- the TestImage fixture.
#include "fs/core/core_test_util.h"

#include <unistd.h>

#include <atomic>

#include "fs/format/state_dir_testing.h"

namespace udax {

TestImage::TestImage(uint64_t size, uint64_t au, uint64_t journal_size, bool meta_copies) {
  (void)kTestStateDir;  // images keep their state in the test's scratch directory
  static std::atomic<int> counter{0};
  path_ = "/dev/shm/udax_core_test_" + std::to_string(getpid()) + "_" +
          std::to_string(counter++) + ".img";
  unlink(path_.c_str());
  RegionOptions ro;
  ro.create_size = size;
  // A constructor that throws gets no destructor: the image goes here, or it stays behind
  // in /dev/shm.
  auto fail = [this](const Status& st) {
    unlink(path_.c_str());
    throw std::runtime_error(st.ToString());
  };
  auto region = Region::Open(path_, ro);
  if (!region.ok()) fail(region.status());
  MkfsParams params;
  params.au_size = au;
  params.journal_size = journal_size;
  params.allow_tiny_journal = true;
  params.meta_copies = meta_copies;  // the fallocate tests drive multi-step shifts with it
  Status st = Filesystem::Format(region->get(), params);
  if (!st.ok()) fail(st);
}

TestImage::~TestImage() {
  // The image; its state (poison list, event log) goes with the state directory at exit.
  unlink(path_.c_str());
}

std::unique_ptr<Filesystem> TestImage::Mount(MountOptions options) {
  auto fs = Filesystem::Mount(path_, options);
  EXPECT_TRUE(fs.ok()) << fs.status().ToString();
  if (!fs.ok()) return nullptr;
  return std::move(fs).value();
}

}  // namespace udax
