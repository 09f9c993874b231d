// media_resolver_test.cc -- events to owners to actions: the resolver, the event log and
// the search for processes that map a bad range (with recorded /proc contents).
#include "notify/media_resolver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "fs/core/core_test_util.h"
#include "notify/mapped_procs.h"
#include "fs/format/state_dir.h"
#include "fs/format/layout.h"
#include "fs/region/region_span.h"
#include "notify/test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

TEST(MappedProcs, MapsLinesMatchDeviceInodeAndFileRange) {
  const dev_t dev = makedev(0, 0x4a);
  // 2 pages of inode 17 mapped from file offset 0x3000.
  const std::string line = "7f00aa000000-7f00aa002000 r--s 00003000 00:4a 17   /mnt/pm/f";
  EXPECT_TRUE(MapsLineCovers(line, dev, 17, 0x3000, 1));
  EXPECT_TRUE(MapsLineCovers(line, dev, 17, 0x4fff, 1));
  EXPECT_TRUE(MapsLineCovers(line, dev, 17, 0x0, 0x3001));
  EXPECT_FALSE(MapsLineCovers(line, dev, 17, 0x5000, 0x1000));
  EXPECT_FALSE(MapsLineCovers(line, dev, 17, 0x0, 0x3000));
  EXPECT_FALSE(MapsLineCovers(line, dev, 18, 0x3000, 1));
  EXPECT_FALSE(MapsLineCovers(line, makedev(0, 0x4b), 17, 0x3000, 1));
  EXPECT_FALSE(MapsLineCovers("garbage", dev, 17, 0, 1));
  EXPECT_FALSE(MapsLineCovers("7f00-7f01 rw-p 00000000 00:00 0 [heap]", dev, 0, 0, 1));
}

TEST(MappedProcs, MountDeviceFromMountinfo) {
  ScratchDir dir;
  const std::string mi = dir.Write(
      "mountinfo",
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "70 22 0:52 / /mnt/pm rw,relatime - fuse /var/tmp/pm.img rw,user_id=0\n"
      "71 22 0:53 / /mnt/pm rw,relatime - fuse /var/tmp/pm2.img rw,user_id=0\n");
  EXPECT_EQ(MountDevice(mi, "/mnt/pm"), makedev(0, 53));  // the top one
  EXPECT_EQ(MountDevice(mi, "/mnt/other"), std::nullopt);
}

// An image with one file of two AUs, and a resolver over it.
struct ResolverFixture {
  TestImage image;
  std::unique_ptr<Filesystem> fs = image.Mount();
  uint64_t ino = 0;
  uint64_t phys1 = 0;  // physical offset of the file's second AU
  EventQueue queue;
  std::unique_ptr<EventLog> log = Must(EventLog::Open(Must(LocateTargetState(image.path(), true)).events));
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> invalidated;

  ResolverFixture() {
    auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    ino = e.ino;
    const std::string data(2 * kAuSize4K, 'd');
    (void)Must(fs->Write(f, 0, data.data(), data.size()));
    fs->Release(f);
    for (const BmapExtent& x : Must(fs->Bmap(ino))) {
      if (x.file_offset <= kAuSize4K && kAuSize4K < x.file_offset + x.length) {
        phys1 = x.phys_offset + (kAuSize4K - x.file_offset);
      }
    }
  }
  MediaResolver::Hooks Hooks() {
    MediaResolver::Hooks h;
    h.invalidate = [this](uint64_t i, uint64_t o, uint64_t l) { invalidated.emplace_back(i, o, l); };
    return h;
  }
  std::vector<nlohmann::json> LogLines() {
    std::ifstream in(log->path());
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

MediaEvent Injected(uint64_t off, uint64_t len) {
  MediaEvent e;
  e.source = MediaEventSource::kInjected;
  e.offset = off;
  e.length = len;
  e.time = std::chrono::system_clock::now();
  return e;
}

TEST(MediaResolver, DataEventIsResolvedInvalidatedAndLogged) {
  ResolverFixture t;
  MediaResolver::Options opts;
  auto resolver = MediaResolver::Start(t.fs.get(), &t.queue, t.log.get(), t.Hooks(), opts);
  ASSERT_TRUE(t.queue.Push(Injected(t.phys1 + 512, 512)));
  for (int i = 0; i < 500 && resolver->handled() == 0; ++i) usleep(10000);
  resolver->Stop();
  ASSERT_EQ(resolver->handled(), 1u);
  ASSERT_EQ(t.invalidated.size(), 1u);
  EXPECT_EQ(t.invalidated[0], std::make_tuple(t.ino, kAuSize4K + 512, uint64_t{512}));
  auto lines = t.LogLines();
  ASSERT_EQ(lines.size(), 1u);
  const auto& j = lines[0];
  EXPECT_EQ(j["source"], "injected");
  EXPECT_EQ(j["offset"], t.phys1 + 512);
  ASSERT_EQ(j["owners"].size(), 1u);
  EXPECT_EQ(j["owners"][0]["kind"], "file-data");
  EXPECT_EQ(j["owners"][0]["ino"], t.ino);
  EXPECT_EQ(j["owners"][0]["path"], "/f");
  EXPECT_EQ(j["owners"][0]["offset"], kAuSize4K + 512);
  EXPECT_EQ(j["owners"][0]["action"], "eio");
  EXPECT_EQ(j["action"], "eio");
  EXPECT_NE(EventRecordToText(j).find("/f"), std::string::npos);
}

// The kill policy SIGKILLs a process whose maps (recorded under a fake /proc) cover the
// bad range, and leaves one mapping another range alone.
TEST(MediaResolver, KillPolicyKillsOnlyTheMappersOfTheRange) {
  ResolverFixture t;
  const dev_t dev = makedev(0, 99);
  auto spawn = [] {
    const pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    return pid;
  };
  const pid_t hit = spawn(), miss = spawn();
  ScratchDir proc;
  char line[256];
  std::snprintf(line, sizeof(line), "7f0000000000-7f0000001000 r--s 00001000 00:63 %llu /mnt/f\n",
                static_cast<unsigned long long>(t.ino));
  proc.Write(std::to_string(hit) + "/maps", line);
  proc.Write(std::to_string(hit) + "/comm", "victim\n");
  std::snprintf(line, sizeof(line), "7f0000000000-7f0000001000 r--s 00000000 00:63 %llu /mnt/f\n",
                static_cast<unsigned long long>(t.ino));
  proc.Write(std::to_string(miss) + "/maps", line);
  MediaResolver::Options opts;
  opts.policy = McePolicy::kKill;
  opts.mount_dev = dev;
  opts.proc_root = proc.path();
  auto resolver = MediaResolver::Start(t.fs.get(), &t.queue, t.log.get(), t.Hooks(), opts);
  EventRecord r = resolver->Handle(Injected(t.phys1, 512));
  resolver->Stop();
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_EQ(r.processes[0].pid, hit);
  EXPECT_EQ(r.processes[0].comm, "victim");
  EXPECT_EQ(r.processes[0].action, "killed");
  int status = 0;
  ASSERT_EQ(waitpid(hit, &status, 0), hit);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(waitpid(miss, &status, WNOHANG), 0);  // still alive
  kill(miss, SIGKILL);
  waitpid(miss, &status, 0);
}

TEST(MediaResolver, NotifyPolicyNamesMappersWithoutSignals) {
  ResolverFixture t;
  ScratchDir proc;
  char line[256];
  std::snprintf(line, sizeof(line), "7f0000000000-7f0000002000 rw-s 00000000 00:63 %llu /mnt/f\n",
                static_cast<unsigned long long>(t.ino));
  proc.Write("999999/maps", line);  // no such process: nothing can be sent to it
  MediaResolver::Options opts;
  opts.mount_dev = makedev(0, 99);
  opts.proc_root = proc.path();
  auto resolver = MediaResolver::Start(t.fs.get(), &t.queue, nullptr, t.Hooks(), opts);
  EventRecord r = resolver->Handle(Injected(t.phys1, 512));
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_EQ(r.processes[0].action.rfind("notified", 0), 0u);
}

TEST(MediaResolver, DeviceRemovedShutsDownAfterTheHook) {
  ResolverFixture t;
  bool hook_saw_running = false;
  MediaResolver::Hooks h;
  h.device_removed = [&](const MediaEvent&) {
    hook_saw_running = !t.fs->shut_down();
    return std::vector<ProcessAction>{{4242, "client", "revoked"}};
  };
  auto resolver = MediaResolver::Start(t.fs.get(), &t.queue, t.log.get(), h, {});
  MediaEvent e;
  e.source = MediaEventSource::kDeviceRemoved;
  e.length = UINT64_MAX;
  e.detail = "/devices/platform/e820_pmem/ndbus0/region0/dax0.0";
  EventRecord r = resolver->Handle(e);
  EXPECT_TRUE(hook_saw_running);
  EXPECT_TRUE(t.fs->shut_down());
  EXPECT_EQ(r.action, "shutdown");
  // What the hook did to lease holders is in the record (the lab's unplug shows it).
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_EQ(r.processes[0].action, "revoked");
  EXPECT_EQ(t.fs->Create(kRootIno, "g", 0644, O_RDWR, kRoot).status().code(), EIO);
}

// One device of three removed: by the kernel (its uevent), the daemon lets go of the
// device's mapping and descriptor; on request (udaxctl remove-device), it keeps them, for
// add-device to take the device back as it is. The kernel's event for a device a request
// lost already lets go of it then.
TEST(MediaResolver, ADeviceTheKernelRemovedIsLetGo) {
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) {
    paths.push_back("/dev/shm/udax_resolver_md_" + std::to_string(getpid()) + "_" + std::to_string(i));
    const int fd = open(paths.back().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 64 << 20), 0);
    close(fd);
  }
  struct Cleanup {
    std::vector<std::string>* paths;
    ~Cleanup() {
      for (const std::string& p : *paths) unlink(p.c_str());
    }
  } cleanup{&paths};
  MkfsParams params;
  params.device_sizes = {64 << 20, 64 << 20, 64 << 20};
  const DiskSuperblock geometry = Must(ComputeGeometry(params));
  {
    std::vector<uint64_t> lengths;
    for (uint32_t d = 0; d < geometry.device_count; ++d) lengths.push_back(geometry.devices[d].length);
    auto span = Must(SpanRegion::Create(paths, lengths, RegionOptions{}));
    ASSERT_OK(Filesystem::Format(span.get(), params));
  }
  auto fs = Must(Filesystem::Mount(paths[0] + "," + paths[1] + "," + paths[2], MountOptions{}));
  EventQueue queue;
  auto resolver = MediaResolver::Start(fs.get(), &queue, nullptr, {}, {});
  auto whole = [&](uint32_t d, bool requested) {
    MediaEvent e;
    e.source = MediaEventSource::kDeviceRemoved;
    e.offset = geometry.devices[d].start;
    e.length = geometry.devices[d].length;
    e.requested = requested;
    return e;
  };
  EventRecord r = resolver->Handle(whole(1, /*requested=*/true));
  EXPECT_EQ(r.action.rfind("degraded", 0), 0u) << r.action;
  EXPECT_TRUE(fs->region()->device_lost(1));
  EXPECT_TRUE(fs->region()->device_mapped(1));  // kept: add-device takes it as it is
  r = resolver->Handle(whole(1, /*requested=*/false));
  EXPECT_EQ(r.action, "repeat");
  EXPECT_FALSE(fs->region()->device_mapped(1));
  EXPECT_NE(r.detail.find("let go"), std::string::npos) << r.detail;
  // A removal raised before add-device mapped the device afresh (it waited in the
  // queue) speaks of the old mapping: nothing is done to the new one.
  MediaEvent queued = whole(1, /*requested=*/false);
  queued.time = std::chrono::system_clock::now();
  Must(fs->RestoreDevice(1, paths[1]));
  r = resolver->Handle(queued);
  EXPECT_EQ(r.action, "stale");
  EXPECT_FALSE(fs->region()->device_lost(1));
  EXPECT_TRUE(fs->region()->device_mapped(1));
  r = resolver->Handle(whole(2, /*requested=*/false));
  EXPECT_EQ(r.action.rfind("degraded", 0), 0u) << r.action;
  EXPECT_FALSE(fs->region()->device_mapped(2));
  EXPECT_TRUE(fs->region()->device_mapped(1));
  EXPECT_FALSE(fs->shut_down());
  resolver->Stop();
  EXPECT_OK(fs->Unmount());
}

TEST(MediaResolver, RelocationsAreLogged) {
  ResolverFixture t;
  std::ofstream(t.fs->region()->badblocks_path()) << (t.phys1 / 512) << " 1\n";
  ASSERT_OK(t.fs->region()->ReloadEmulatedPoison());
  auto resolver = MediaResolver::Start(t.fs.get(), &t.queue, t.log.get(), t.Hooks(), {});
  resolver->Handle(Injected(t.phys1, 512));
  Inode* f = Must(t.fs->Open(t.ino, O_RDWR));
  const std::string fresh(kAuSize4K, 'n');
  ASSERT_EQ(Must(t.fs->Write(f, kAuSize4K, fresh.data(), fresh.size())), fresh.size());
  t.fs->Release(f);
  resolver->Stop();
  auto lines = t.LogLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["action"], "relocated");
  EXPECT_EQ(lines[1]["owners"][0]["path"], "/f");
  EXPECT_EQ(lines[1]["owners"][0]["offset"], kAuSize4K);
}

}  // namespace
}  // namespace udax
