// lab_poke.cc -- the lab guest's hands on pmem: map a page of a target, find its frame,
// poison it, or sit on it in user mode, and report every SIGBUS as the kernel gave it.
//
// A test inside the lab guest uses it to act as a direct-map client of the bytes udaxfs
// stores a file in (the target is /dev/daxX.Y or the region file on a DAX mount, OFFSET a
// region offset from `udaxctl bmap`):
//   lab_poke pfn TARGET OFFSET                 prints the page frame (from /proc/self/pagemap)
//   lab_poke madvise TARGET OFFSET             madvise(MADV_HWPOISON) on that page
//   lab_poke spin TARGET OFFSET SECONDS [early] [touch]
//       maps and touches the page, prints "ready pfn=0x... text=LO-HI" (the address range
//       of this program's code: the host agent injects a machine check only while the vCPU
//       runs there), then loops in user mode until a SIGBUS or SECONDS pass. "early" opts
//       into early kill (BUS_MCEERR_AO as soon as the kernel finds poison in the page);
//       "touch" reads the page between rounds (a client using its mapping).
//   lab_poke touch TARGET OFFSET               one read through a mapping
//   lab_poke preads FILE GO_FILE OFFSET...     a pread(2) reader (run it under the preload
//       shim: its reads come from a read view): reads 4 KiB at each OFFSET of FILE, prints
//       "ready", waits until GO_FILE exists, reads them again. Each read prints one line,
//       "pread OFFSET: ok HASH" or "pread OFFSET: EIO" (any errno by name).
// Every SIGBUS is printed as one line:
//   sigbus si_code=4 (BUS_MCEERR_AR) addr_lsb=21 addr=map+0x1000
// Exit status: 0 when the action completed (whatever the signal), 1 on a usage or system
// error. Output is line-buffered so the guest log interleaves correctly.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

extern "C" char __executable_start;
extern "C" char etext;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2u << 20;

volatile sig_atomic_t g_got_sigbus = 0;
siginfo_t g_info;
sigjmp_buf g_jump;
volatile sig_atomic_t g_jump_armed = 0;
char* g_map = nullptr;

const char* CodeName(int code) {
  switch (code) {
    case BUS_ADRALN: return "BUS_ADRALN";
    case BUS_ADRERR: return "BUS_ADRERR";
    case BUS_OBJERR: return "BUS_OBJERR";
    case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
    case BUS_MCEERR_AO: return "BUS_MCEERR_AO";
    case SI_KERNEL: return "SI_KERNEL";
    case SI_USER: return "SI_USER";
    default: return "?";
  }
}

void OnSigbus(int, siginfo_t* info, void*) {
  g_info = *info;
  g_got_sigbus = 1;
  // A synchronous fault would repeat forever on return: leave the faulting access.
  if (g_jump_armed) siglongjmp(g_jump, 1);
}

void ReportSigbus() {
  const auto addr = reinterpret_cast<uintptr_t>(g_info.si_addr);
  std::printf("sigbus si_code=%d (%s) addr_lsb=%d addr=", g_info.si_code, CodeName(g_info.si_code),
              static_cast<int>(g_info.si_addr_lsb));
  if (addr == 0) {
    std::printf("null\n");
  } else if (g_map != nullptr && addr >= reinterpret_cast<uintptr_t>(g_map)) {
    std::printf("map+%#" PRIxPTR "\n", addr - reinterpret_cast<uintptr_t>(g_map));
  } else {
    std::printf("%#" PRIxPTR "\n", addr);
  }
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "lab_poke: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct Mapping {
  char* page = nullptr;  // the page holding OFFSET
  uint64_t offset = 0;
};

// Maps the granule of TARGET around `offset`: 2 MiB on a device (devdax refuses smaller
// or unaligned maps), a page on a file.
Mapping MapTarget(const char* target, uint64_t offset) {
  const int fd = open(target, O_RDWR);
  if (fd < 0) Die(target);
  struct stat st;
  if (fstat(fd, &st) != 0) Die("fstat");
  const uint64_t granule = S_ISCHR(st.st_mode) ? kHugePage : kPage;
  const uint64_t start = offset & ~(granule - 1);
  void* p = mmap(nullptr, granule, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(start));
  if (p == MAP_FAILED) Die("mmap");
  close(fd);
  g_map = static_cast<char*>(p);
  return Mapping{g_map + ((offset - start) & ~(kPage - 1)), offset};
}

// Reads one byte of the page, catching a SIGBUS. Returns true when the read completed.
bool Touch(const char* page) {
  g_jump_armed = 1;
  if (sigsetjmp(g_jump, 1) != 0) {
    g_jump_armed = 0;
    return false;
  }
  const char c = *static_cast<const volatile char*>(page);
  g_jump_armed = 0;
  (void)c;
  return true;
}

uint64_t FrameOf(const void* addr) {
  const int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) Die("/proc/self/pagemap");
  uint64_t entry = 0;
  const off_t pos = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / kPage * 8);
  if (pread(fd, &entry, sizeof(entry), pos) != static_cast<ssize_t>(sizeof(entry))) Die("pagemap");
  close(fd);
  if ((entry >> 63) == 0) return 0;  // not present
  return entry & ((uint64_t{1} << 55) - 1);
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The user-mode loop the machine check is meant to land in: registers only, no system
// calls, no memory; the clock (vDSO, outside our text) is read only between long rounds.
__attribute__((noinline)) void Spin(double seconds, const char* touch) {
  const double end = Now() + seconds;
  while (!g_got_sigbus && Now() < end) {
    if (touch != nullptr && !Touch(touch)) break;
    for (uint64_t i = 0; i < 20'000'000 && !g_got_sigbus; ++i) {
      asm volatile("");  // keeps the empty loop
    }
  }
}

int Usage() {
  std::fprintf(stderr,
               "usage: lab_poke pfn|madvise|touch TARGET OFFSET\n"
               "       lab_poke spin TARGET OFFSET SECONDS [early] [touch]\n"
               "       lab_poke preads FILE GO_FILE OFFSET...\n");
  return 1;
}

// One 4 KiB pread per offset, reported; the bytes as an FNV-1a hash (compared across runs).
void ReadEach(int fd, char** offsets, int count) {
  static char buf[4096];
  for (int i = 0; i < count; ++i) {
    const off_t off = static_cast<off_t>(std::strtoull(offsets[i], nullptr, 0));
    const ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0) {
      std::printf("pread %s: %s\n", offsets[i], errno == EIO ? "EIO" : std::strerror(errno));
      continue;
    }
    uint64_t h = 1469598103934665603ULL;
    for (ssize_t j = 0; j < n; ++j) h = (h ^ static_cast<unsigned char>(buf[j])) * 1099511628211ULL;
    std::printf("pread %s: ok %zd bytes %016" PRIx64 "\n", offsets[i], n, h);
  }
}

int Preads(int argc, char** argv) {
  if (argc < 5) return Usage();
  const int fd = open(argv[2], O_RDONLY);
  if (fd < 0) Die("open");
  ReadEach(fd, argv + 4, argc - 4);
  std::printf("ready\n");
  struct stat st;
  for (int i = 0; i < 6000 && stat(argv[3], &st) != 0; ++i) usleep(10000);
  ReadEach(fd, argv + 4, argc - 4);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 4) return Usage();
  const std::string cmd = argv[1];
  if (cmd == "preads") {
    // The shim turns faults under its copies into EIO: a SIGBUS here is a failure (and a
    // synchronous one would repeat forever on return).
    struct sigaction report{};
    report.sa_sigaction = [](int, siginfo_t* info, void*) {
      char line[96];
      const int n = std::snprintf(line, sizeof(line), "SIGBUS reached the program: si_code=%d\n",
                                  info->si_code);
      (void)!write(1, line, static_cast<size_t>(n));
      _exit(3);
    };
    report.sa_flags = SA_SIGINFO;
    sigemptyset(&report.sa_mask);
    if (sigaction(SIGBUS, &report, nullptr) != 0) Die("sigaction");
    return Preads(argc, argv);
  }
  const char* target = argv[2];
  const uint64_t offset = std::strtoull(argv[3], nullptr, 0);

  struct sigaction sa{};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, nullptr) != 0) Die("sigaction");

  bool early = false, touch = false;
  for (int i = 5; cmd == "spin" && i < argc; i++) {
    early |= std::string(argv[i]) == "early";
    touch |= std::string(argv[i]) == "touch";
  }
  if (early && prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0) Die("prctl");
  const Mapping m = MapTarget(target, offset);
  if (!Touch(m.page)) {
    std::printf("touch before the action: ");
    ReportSigbus();
    return 0;
  }

  if (cmd == "pfn") {
    std::printf("pfn=%#" PRIx64 "\n", FrameOf(m.page));
  } else if (cmd == "touch") {
    std::printf("touch: read completed\n");
  } else if (cmd == "madvise") {
    std::printf("pfn=%#" PRIx64 "\n", FrameOf(m.page));
    g_jump_armed = 1;
    if (sigsetjmp(g_jump, 1) == 0) {
      const int r = madvise(m.page, kPage, MADV_HWPOISON);
      g_jump_armed = 0;
      std::printf("madvise(MADV_HWPOISON) = %d%s%s\n", r, r ? " " : "", r ? std::strerror(errno) : "");
    }
    g_jump_armed = 0;
    if (g_got_sigbus) ReportSigbus();
    g_got_sigbus = 0;
    std::printf("touch after: %s\n", Touch(m.page) ? "read completed" : "SIGBUS");
    if (g_got_sigbus) ReportSigbus();
  } else if (cmd == "spin" && argc >= 5) {
    const double seconds = std::strtod(argv[4], nullptr);
    std::printf("ready pfn=%#" PRIx64 " text=%p-%p\n", FrameOf(m.page),
                static_cast<void*>(&__executable_start), static_cast<void*>(&etext));
    Spin(seconds, touch ? m.page : nullptr);
    if (g_got_sigbus) {
      ReportSigbus();
      g_got_sigbus = 0;
      std::printf("touch after: %s\n", Touch(m.page) ? "read completed" : "SIGBUS");
      if (g_got_sigbus) ReportSigbus();
    } else {
      std::printf("no signal in %.0f s\n", seconds);
    }
  } else {
    return Usage();
  }
  return 0;
}
