// region_pmem2.cc -- Region::Open on libpmem2: find out what the target is, map it, access it.
#include "fs/region/region_pmem2.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "fs/base/hex.h"
#include "fs/format/badblock_list.h"
#include "fs/region/region_span.h"

namespace udax {
namespace {

// Finest first: BYTE needs a platform whose CPU caches are in the persistence domain
// (eADR), CACHE_LINE a MAP_SYNC-capable mapping (devdax, or a file on a DAX mount), and
// PAGE works everywhere. libpmem2 refuses a mapping coarser than the one required, so
// the first granularity that maps is the best the target offers.
constexpr pmem2_granularity kGranularities[] = {
    PMEM2_GRANULARITY_BYTE, PMEM2_GRANULARITY_CACHE_LINE, PMEM2_GRANULARITY_PAGE};

Status NotMappable(const std::string& path) {
  return Status::InvalidArgument(path + ": not a regular file or a devdax device");
}

// Creates the missing plain file, sized (sparse) to `size`. Losing a creation race to
// another opener is fine: the file exists either way and is opened normally next.
Status CreateFile(const std::string& path, uint64_t size) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    if (errno == EEXIST) return Status::Ok();
    return Status::FromErrno(path + ": create");
  }
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    Status st = Status::FromErrno(path + ": size to " + std::to_string(size) + " bytes");
    unlink(path.c_str());  // leave no empty file behind to fail the next Open as "empty"
    return st;
  }
  return Status::Ok();
}

bool IsMappableType(mode_t mode) { return S_ISREG(mode) || S_ISCHR(mode); }

// Opens the target (creating it first if asked) and checks its type. The type is checked
// before open so that a FIFO cannot block us, and again on the descriptor in case the
// name was replaced in between.
Result<UniqueFd> OpenTarget(const std::string& path, const RegionOptions& options,
                            struct stat* st) {
  if (stat(path.c_str(), st) != 0) {
    if (errno != ENOENT || options.create_size == 0) return Status::FromErrno(path);
    UDAX_RETURN_IF_ERROR(CreateFile(path, options.create_size));
    if (stat(path.c_str(), st) != 0) return Status::FromErrno(path);
  }
  if (!IsMappableType(st->st_mode)) return NotMappable(path);

  const int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  UniqueFd fd(open(path.c_str(), flags));
  if (!fd.valid()) return Status::FromErrno(path + ": open");
  if (fstat(fd.get(), st) != 0) return Status::FromErrno(path + ": fstat");
  if (!IsMappableType(st->st_mode)) return NotMappable(path);
  return fd;
}

// An exclusive lock per open file description: a second Open, from this process or
// another, fails instead of two daemons writing one region.
Status LockTarget(int fd, const std::string& path) {
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Status::Ok();
  if (errno == EWOULDBLOCK) return Status::Busy(path + ": in use by another udaxfs (locked)");
  return Status::FromErrno(path + ": flock");
}

Result<Pmem2MapPtr> MapFinest(const pmem2_source* source, bool read_only, const std::string& path,
                              const Pmem2Placement* placement) {
  pmem2_config* raw_cfg = nullptr;
  int ret = pmem2_config_new(&raw_cfg);
  if (ret != 0) return Pmem2Status(ret, path, "pmem2_config_new");
  Pmem2ConfigPtr cfg(raw_cfg);
  if (placement != nullptr) {
    ret = pmem2_config_set_length(cfg.get(), placement->length);
    if (ret != 0) return Pmem2Status(ret, path, "pmem2_config_set_length");
    ret = pmem2_config_set_vm_reservation(cfg.get(), placement->reservation, placement->offset);
    if (ret != 0) return Pmem2Status(ret, path, "pmem2_config_set_vm_reservation");
  }
  if (read_only) {
    ret = pmem2_config_set_protection(cfg.get(), PMEM2_PROT_READ);
    if (ret != 0) return Pmem2Status(ret, path, "pmem2_config_set_protection");
  }
  for (pmem2_granularity granularity : kGranularities) {
    ret = pmem2_config_set_required_store_granularity(cfg.get(), granularity);
    if (ret != 0) return Pmem2Status(ret, path, "pmem2_config_set_required_store_granularity");
    pmem2_map* raw_map = nullptr;
    ret = pmem2_map_new(&raw_map, cfg.get(), source);
    if (ret == 0) return Pmem2MapPtr(raw_map);
    if (ret != PMEM2_E_GRANULARITY_NOT_SUPPORTED) return Pmem2Status(ret, path, "pmem2_map_new");
  }
  // Unreachable: PAGE is the coarsest granularity and satisfies every mapping.
  return Status::Error(EOPNOTSUPP, path + ": libpmem2 offers no store granularity");
}

}  // namespace

Result<std::unique_ptr<Region>> Region::Open(const std::string& path,
                                             const RegionOptions& options) {
  // "A,B,C" names the devices of one filesystem, unless a target has that very name.
  struct stat st;
  if (path.find(',') != std::string::npos && stat(path.c_str(), &st) != 0) {
    return SpanRegion::Open(SplitDeviceList(path), options);
  }
  return Pmem2Region::Open(path, options);
}

Result<std::unique_ptr<Region>> Pmem2Region::Open(const std::string& path,
                                                  const RegionOptions& options) {
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Pmem2Region> region, OpenPlaced(path, options, nullptr));
  return std::unique_ptr<Region>(std::move(region));
}

Result<std::unique_ptr<Pmem2Region>> Pmem2Region::OpenPlaced(const std::string& path,
                                                             const RegionOptions& options,
                                                             const Pmem2Placement* placement) {
  // Install the handler before anything can touch the mapping, not on the first copy.
  InstallSigbusHandler();

  struct stat st;
  UDAX_ASSIGN_OR_RETURN(UniqueFd fd, OpenTarget(path, options, &st));
  const bool is_device = S_ISCHR(st.st_mode);
  // libpmem2 would say "file length is equal 0"; say what it means for a region.
  if (!is_device && st.st_size == 0) {
    return Status::InvalidArgument(path + ": empty file: a region needs a non-zero size");
  }

  pmem2_source* raw_source = nullptr;
  int ret = pmem2_source_from_fd(&raw_source, fd.get());
  if (ret != 0) {
    // For a character device outside the dax subsystem (/dev/null, a tty) libpmem2
    // returns PMEM2_E_INVALID_FILE_TYPE with an empty message.
    if (ret == PMEM2_E_INVALID_FILE_TYPE) return NotMappable(path);
    return Pmem2Status(ret, path, "pmem2_source_from_fd");
  }
  Pmem2SourcePtr source(raw_source);

  size_t size = 0;
  ret = pmem2_source_size(source.get(), &size);
  if (ret != 0) return Pmem2Status(ret, path, "pmem2_source_size");
  if (size == 0) return Status::InvalidArgument(path + ": zero-sized target");
  size_t alignment = 0;
  ret = pmem2_source_alignment(source.get(), &alignment);
  if (ret != 0) return Pmem2Status(ret, path, "pmem2_source_alignment");

  // Locked once the target is known to be mappable (so a busy /dev/null still reads as
  // the wrong kind of file), and before anything is mapped.
  if (placement != nullptr) {
    if (placement->length > size) {
      return Status::InvalidArgument(path + ": " + std::to_string(size) +
                                     " bytes, shorter than the " +
                                     std::to_string(placement->length) + " the filesystem uses");
    }
    size = placement->length;
  }
  if (options.lock) UDAX_RETURN_IF_ERROR(LockTarget(fd.get(), path));
  UDAX_ASSIGN_OR_RETURN(Pmem2MapPtr map,
                        MapFinest(source.get(), options.read_only, path, placement));

  std::unique_ptr<Pmem2Region> region(new Pmem2Region());
  region->granularity_ = pmem2_map_get_store_granularity(map.get());
  if (is_device) {
    region->kind_ = RegionKind::kDevdax;
  } else if (region->granularity_ == PMEM2_GRANULARITY_PAGE) {
    region->kind_ = RegionKind::kEmulated;
  } else {
    region->kind_ = RegionKind::kFsdax;
  }
  if (region->kind_ == RegionKind::kEmulated) {
    struct statfs fs_stat;
    region->volatile_backing_ = fstatfs(fd.get(), &fs_stat) == 0 &&
                                (fs_stat.f_type == TMPFS_MAGIC || fs_stat.f_type == RAMFS_MAGIC);
    region->stored_.Reset(size);
    region->mapped_.Reset(size);
  }
  region->path_ = options.display_path.empty() ? path : options.display_path;
  region->size_ = size;
  region->alignment_ = alignment;
  region->read_only_ = options.read_only;
  region->fd_ = fd.get();
  region->base_ = static_cast<uint8_t*>(pmem2_map_get_address(map.get()));
  region->persist_fn_ = pmem2_get_persist_fn(map.get());
  region->flush_fn_ = pmem2_get_flush_fn(map.get());
  region->drain_fn_ = pmem2_get_drain_fn(map.get());
  region->memcpy_fn_ = pmem2_get_memcpy_fn(map.get());
  region->memset_fn_ = pmem2_get_memset_fn(map.get());
  region->fd_owner_ = std::move(fd);
  region->source_ = std::move(source);
  region->map_ = std::move(map);
  // A plain file may carry emulated poison (its list in the state directory); a device's
  // poison is real.
  if (!is_device && options.emulate_poison) UDAX_RETURN_IF_ERROR(region->AttachEmulatedPoison());
  return region;
}

void Pmem2Region::Unmap() {
  map_.reset();
  base_ = nullptr;
}

Status Pmem2Region::Release() {
  if (base_ != nullptr) {
    UniqueFd empty(memfd_create("udaxfs-released-device", MFD_CLOEXEC));
    if (!empty.valid()) return Status::FromErrno(path_ + ": memfd_create");
    // Mapped past its end (it has none): every access is a SIGBUS (BUS_ADRERR). MAP_FIXED
    // swaps the mappings in one step: no instant leaves the range unmapped (a SIGSEGV).
    if (mmap(base_, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, empty.get(), 0) ==
        MAP_FAILED) {
      return Status::FromErrno(path_ + ": mapping over the removed device");
    }
  }
  UniqueFd null(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null.valid()) return Status::FromErrno("/dev/null");
  if (fd_ >= 0 && dup3(null.get(), fd_, O_CLOEXEC) < 0) {
    return Status::FromErrno(path_ + ": letting go of the removed device's descriptor");
  }
  return Status::Ok();
}

Status Pmem2Region::ReattachEmulatedPoison() {
  if (kind_ == RegionKind::kDevdax) return Status::Ok();
  return AttachEmulatedPoison();
}

Status Pmem2Region::ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const {
  UDAX_RETURN_IF_ERROR(CheckRange("read", off, n));
  UDAX_RETURN_IF_ERROR(CheckEmulatedPoison("read", off, n, fault));
  CaughtSigbus caught;
  if (SafeCopyFromPmem(dst, base_ + off, n, &caught)) return Status::Ok();
  return FaultStatus("read", caught, fault);
}

Status Pmem2Region::WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                              MediaFault* fault) {
  if (read_only_) return ReadOnlyStatus("write");
  UDAX_RETURN_IF_ERROR(CheckRange("write", off, n));
  if (kind_ == RegionKind::kEmulated && !StoresThroughMapping(off, n) && ImageCovers(off, n)) {
    return WriteThroughFd(off, src, n, persist);
  }
  unsigned flags = PMEM2_F_MEM_NONTEMPORAL;
  if (page_granular()) {
    // libpmem2's page-granularity memcpy msyncs on every call and abort()s when msync
    // fails; we msync once, only when asked, and turn a failure into a Status.
    flags |= PMEM2_F_MEM_NOFLUSH;
  } else if (!persist) {
    flags |= PMEM2_F_MEM_NODRAIN;  // the caller batches: Drain() or Persist() later
  }
  CaughtSigbus caught;
  if (!SafeCopyToPmem(memcpy_fn_, base_ + off, src, n, flags, &caught)) {
    return FaultStatus("write", caught, fault);
  }
  if (persist && page_granular()) return SyncPages("write", off, n);
  return Status::Ok();
}

// An emulated region's storage is the image's page cache, which the kernel writes through
// its own mapping of every page: pwrite costs no page fault in this process, where a store
// to a page the daemon has not touched yet costs one (and a page-table update, which is
// most of an allocating write's time in a virtual machine with shadow page tables). The
// mapping sees the same pages. A full tmpfs gives ENOSPC here, where a store would SIGBUS.
// An image cut short behind our back has lost the pages past its new end, as a device
// loses bad media: those writes take the mapping, which faults (SIGBUS, caught) as the
// media would, instead of pwrite growing the file back.
//
// The descriptor has a cost of its own, though: a write to a file takes the file's inode
// lock, so every daemon thread writing anywhere in the region queues behind one pwrite
// (two writers of 1 MiB blocks spent a fifth of a core spinning on it, and scaled 1.4x
// instead of 2x). A store through the mapping takes no lock. So:
//   - a small write (under a page) takes the mapping when its pages are stored: one
//     page-table entry, made once, serves every later journal commit to that page;
//   - a larger one does so on tmpfs or ramfs, whose pages are memory, when the mapping
//     has page-table entries for all of it (`mapped_`), or when it is large enough
//     (kPopulateMin) to be worth making them: one MADV_POPULATE_WRITE, instead of a
//     fault per page inside the copy, which allocates a page the image lacks or fails
//     (a full tmpfs) where a store would SIGBUS. A small write to pages never mapped
//     keeps pwrite: on shadow page tables each new entry traps into the hypervisor, and
//     4 KiB random writes cost the daemon 57 us of CPU that way against 37 through the
//     descriptor (bench/README.md, session 10). On an image on a disk filesystem a page
//     may not be in memory, and a store would first read it from the disk where pwrite
//     of a whole page does not;
//   - everything else takes the descriptor, which marks what it stored.
// A page-table entry the kernel drops later (reclaim, migration) only costs a fault.
bool Pmem2Region::StoresThroughMapping(uint64_t off, uint64_t n) {
  constexpr uint64_t kPopulateMin = 64 << 10;
  if (n < StoredPages::kPage) return stored_.All(off, n);
  if (!volatile_backing_) return false;
  if (mapped_.All(off, n)) return true;
  if (n < kPopulateMin) return false;
  if (!PopulateWrite(off, n)) return false;
  mapped_.Mark(off, n);
  stored_.Mark(off, n);
  return true;
}

bool Pmem2Region::ImageCovers(uint64_t off, uint64_t n) const {
  struct stat st;
  return fstat(fd_, &st) == 0 && st.st_size >= 0 && static_cast<uint64_t>(st.st_size) >= off + n;
}

Status Pmem2Region::WriteThroughFd(uint64_t off, const void* src, size_t n, bool persist) {
  const char* from = static_cast<const char*>(src);
  for (size_t done = 0; done < n;) {
    const ssize_t got = pwrite(fd_, from + done, n - done, static_cast<off_t>(off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::FromErrno(path_ + ": write [" + Hex(off) + ", +" + Hex(n) + ")");
    if (got == 0) return Status::IoError(path_ + ": write: no progress at " + Hex(off + done));
    stored_.Mark(off + done, static_cast<size_t>(got));
    done += static_cast<size_t>(got);
  }
  if (persist) return SyncPages("write", off, n);
  return Status::Ok();
}

std::vector<RegionRange> Pmem2Region::MaybeNonZeroIn(uint64_t off, uint64_t n) const {
  // ZeroSafe punches an emulated image's pages out: what is a hole there reads zeros.
  if (kind_ != RegionKind::kEmulated || n == 0) return {{off, n}};
  std::vector<RegionRange> out;
  const uint64_t end = off + n;
  for (uint64_t pos = off; pos < end;) {
    const off_t data = lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data from pos on
      out.push_back({pos, end - pos});  // cannot tell: all of it may be data
      break;
    }
    if (static_cast<uint64_t>(data) >= end) break;
    off_t hole = lseek(fd_, data, SEEK_HOLE);
    const uint64_t stop = hole < 0 ? end : std::min(end, static_cast<uint64_t>(hole));
    out.push_back({static_cast<uint64_t>(data), stop - static_cast<uint64_t>(data)});
    pos = stop;
  }
  return out;
}

Status Pmem2Region::ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) {
  if (read_only_) return ReadOnlyStatus("zero");
  UDAX_RETURN_IF_ERROR(CheckRange("zero", off, n));
  // An emulated region zeroes whole pages by punching them out of the image: the file
  // then reads as zeros without a byte written, and the page is allocated only when
  // someone stores to it (as a fresh tmpfs page is). Allocating a large file, or mapping
  // it for a direct-map client, then costs what the same on tmpfs costs instead of a
  // second pass over the memory. fdatasync makes the punch durable on a disk-backed image
  // (a no-op on tmpfs). Falls back to stores where the backing filesystem cannot punch.
  const uint64_t page = 4096;
  if (kind_ == RegionKind::kEmulated && n >= 16 * page && off % page == 0 && n % page == 0 &&
      fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                static_cast<off_t>(n)) == 0) {
    stored_.Clear(off, n);  // holes again: the next write takes the descriptor
    mapped_.Clear(off, n);
    if (persist && !volatile_backing_ && fdatasync(fd_) != 0) {
      return Status::Error(errno, path_ + ": zero: fdatasync: " + strerror(errno));
    }
    return Status::Ok();
  }
  unsigned flags = PMEM2_F_MEM_NONTEMPORAL;
  if (page_granular()) {
    flags |= PMEM2_F_MEM_NOFLUSH;  // as in WriteSafe
  } else if (!persist) {
    flags |= PMEM2_F_MEM_NODRAIN;
  }
  CaughtSigbus caught;
  if (!SafeSetPmem(memset_fn_, base_ + off, 0, n, flags, &caught)) {
    return FaultStatus("zero", caught, fault);
  }
  if (persist && page_granular()) return SyncPages("zero", off, n);
  return Status::Ok();
}

Status Pmem2Region::Persist(uint64_t off, size_t n) {
  UDAX_RETURN_IF_ERROR(CheckRange("persist", off, n));
  if (read_only_ || n == 0) return Status::Ok();  // nothing can be dirty
  if (page_granular()) return SyncPages("persist", off, n);
  CaughtSigbus caught;
  if (!SafeFlushPmem(persist_fn_, base_ + off, n, &caught)) {
    return FaultStatus("persist", caught, nullptr);
  }
  return Status::Ok();
}

Status Pmem2Region::Flush(uint64_t off, size_t n) {
  UDAX_RETURN_IF_ERROR(CheckRange("flush", off, n));
  if (read_only_ || n == 0) return Status::Ok();
  // Page granularity has no flush/drain split: msync is both, and Drain is a no-op.
  if (page_granular()) return SyncPages("flush", off, n);
  CaughtSigbus caught;
  if (!SafeFlushPmem(flush_fn_, base_ + off, n, &caught)) {
    return FaultStatus("flush", caught, nullptr);
  }
  return Status::Ok();
}

void Pmem2Region::Drain() { drain_fn_(); }

Status Pmem2Region::SyncPages(const char* op, uint64_t off, uint64_t n) const {
  // On tmpfs msync ends in noop_fsync, yet costs a system call, mmap_lock and a VMA walk:
  // 6 to 11 of them per write, create or unlink (bench/README.md, the profile).
  if (n == 0 || volatile_backing_) return Status::Ok();
  const uintptr_t page = alignment_;  // the page size on a plain file
  const uintptr_t start = reinterpret_cast<uintptr_t>(base_ + off) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(base_ + off + n);
  while (msync(reinterpret_cast<void*>(start), end - start, MS_SYNC) != 0) {
    if (errno == EINTR) continue;
    return Status::FromErrno(path_ + ": " + op + ": msync [" + Hex(off) + ", +" + Hex(n) + ")");
  }
  return Status::Ok();
}

Status Pmem2Region::FaultStatus(const char* op, const CaughtSigbus& caught, MediaFault* out) const {
  // The bad unit is the granule around the faulting address (the whole access for
  // SI_KERNEL), clipped to the region (a 2 MiB devdax granule can reach past the end of a
  // smaller test region).
  const uintptr_t base = reinterpret_cast<uintptr_t>(base_);
  uintptr_t first = caught.first;
  uintptr_t last = caught.last;
  if (first < base) first = base;
  if (last > base + size_) last = base + size_;
  MediaFault fault;
  fault.offset = first - base;
  fault.length = last > first ? last - first : 0;
  fault.si_code = caught.si_code;
  ReportFault(fault);  // fills in the origin
  if (out != nullptr) *out = fault;
  return Status::IoError(path_ + ": " + op + ": media fault (" + SigbusCodeName(caught.si_code) +
                         ") at region offset " + Hex(fault.offset) + ", " + Hex(fault.length) +
                         " bytes");
}

Status Pmem2Region::ReadOnlyStatus(const char* op) const {
  return Status::Error(EROFS, path_ + ": " + op + ": region is open read-only");
}

}  // namespace udax
