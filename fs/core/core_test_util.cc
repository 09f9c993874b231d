// core_test_util.cc -- the TestImage fixture and the populated trees.
#include "fs/core/core_test_util.h"

#include <fcntl.h>
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

CopiedKindsTree PopulateCopiedKinds(Filesystem* fs) {
  const Caller root{0, 0};
  const uint64_t au = fs->superblock().au_size;
  CopiedKindsTree t;
  t.dir = Must(fs->Mkdir(kRootIno, "d", 0755, root)).ino;
  for (int i = 0; i < 300; ++i) {
    Must(fs->Mknod(t.dir, "entry-with-a-long-name-" + std::to_string(i), S_IFREG | 0644, 0, root));
  }
  auto [e, f] = Must(fs->Create(kRootIno, "frag", 0644, O_RDWR, root));
  t.frag = e.ino;
  // Every other AU: one extent each, more than the inode holds inline.
  for (int i = 0; i < 40; ++i) {
    const std::string chunk(100, static_cast<char>('A' + i % 26));
    EXPECT_EQ(Must(fs->Write(f, i * 2 * au, chunk.data(), chunk.size())), chunk.size());
  }
  fs->Release(f);
  EXPECT_OK(fs->SetXattr(t.frag, "user.big", std::string(6000, 'x'), 0, root));
  t.sym = Must(fs->Symlink(kRootIno, "sym", std::string(500, 's'), root)).ino;
  return t;
}

}  // namespace udax
