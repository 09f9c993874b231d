// mkfs_main.cc -- mkfs.udaxfs: format a devdax device, a DAX file or an image file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/region/region_span.h"
#include "mount-helper/size_parse.h"

namespace {

constexpr int kExitUsage = 1;
constexpr int kExitFailed = 8;

int Fail(const std::string& target, const std::string& msg) {
  fprintf(stderr, "mkfs.udaxfs: %s: %s\n", target.c_str(), msg.c_str());
  return kExitFailed;
}

// Checks one target (changes nothing), and with `create` creates or resizes it when it
// is an image and -s was given. Returns 0, or the exit code after saying why on stderr.
int PrepareTarget(const std::string& target, const std::optional<uint64_t>& size, bool force,
                  bool* is_file, bool create = true) {
  struct stat st;
  const bool exists = stat(target.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Fail(target, std::strerror(errno));
  if (!exists && !size) return Fail(target, "does not exist (give -s SIZE to create an image)");
  if (exists && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return Fail(target, "not a regular file or a devdax device");
  }
  *is_file = !exists || S_ISREG(st.st_mode);
  // Refuse to overwrite a filesystem unless forced.
  if (exists && !force) {
    int fd = open(target.c_str(), O_RDONLY);
    char magic[8] = {};
    if (fd >= 0) {
      const bool have = pread(fd, magic, sizeof(magic), 0) == sizeof(magic);
      close(fd);
      if (have && std::memcmp(magic, udax::kSuperMagic, sizeof(magic)) == 0) {
        return Fail(target, "contains a udaxfs already (use -f to overwrite)");
      }
    }
  }
  if (create && *is_file && size && (!exists || static_cast<uint64_t>(st.st_size) != *size)) {
    int fd = open(target.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0) return Fail(target, std::strerror(errno));
    const int rc = ftruncate(fd, static_cast<off_t>(*size));
    const int err = errno;
    close(fd);
    if (rc != 0) return Fail(target, std::string("resize: ") + std::strerror(err));
  }
  return 0;
}

void PrintSummary(const std::string& target, const char* kind, const udax::DiskSuperblock& sb) {
  printf("udaxfs: %s (%s region): %llu MiB, %s allocation units, %llu inodes, %llu KiB journal\n",
         target.c_str(), kind, static_cast<unsigned long long>(sb.region_size >> 20),
         sb.au_size == udax::kAuSize2M ? "2 MiB" : "4 KiB",
         static_cast<unsigned long long>(sb.inode_count - 2),
         static_cast<unsigned long long>(sb.journal_len >> 10));
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    printf("device %u: %llu MiB at %llu MiB of the filesystem\n", d,
           static_cast<unsigned long long>(sb.devices[d].length >> 20),
           static_cast<unsigned long long>(sb.devices[d].start >> 20));
  }
  if (udax::HasMetaCopies(sb)) {
    // What the copies cost: the second inode table now, one AU per metadata AU later,
    // and the AU pairs kept back for metadata (1/32 of the pairs, at least 64).
    printf("metadata copies: on%s: second inode table %llu KiB; each directory, extent-block, "
           "attribute and symlink AU takes a second AU\n",
           sb.device_count > 1 ? ", each on another device than its first" : "",
           static_cast<unsigned long long>(sb.itable2_len >> 10));
  } else {
    printf("metadata copies: off\n");
  }
}

}  // namespace


// mkfs over several targets: one filesystem whose devices they are, in the order given.
int FormatSeveral(const std::vector<std::string>& targets, const std::optional<uint64_t>& size,
                  const std::string& au_text, bool force, bool quiet, udax::MkfsParams params) {
  if (targets.size() > udax::kMaxDevices) {
    fprintf(stderr, "mkfs.udaxfs: at most %u devices\n", udax::kMaxDevices);
    return kExitUsage;
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (targets[i] == targets[j]) return Fail(targets[i], "named twice");
    }
  }
  if (size) {
    // Validate the geometry before creating or resizing anything.
    udax::MkfsParams planned = params;
    planned.device_sizes.assign(targets.size(), *size);
    auto geometry = udax::ComputeGeometry(planned);
    if (!geometry.ok()) return Fail(targets[0], geometry.status().message());
  }
  // Every target checked before any is created or resized.
  for (const std::string& t : targets) {
    bool is_file = true;
    if (int rc = PrepareTarget(t, size, force, &is_file, /*create=*/false); rc != 0) return rc;
  }
  bool any_device = false;
  std::vector<uint64_t> sizes;
  for (const std::string& t : targets) {
    bool is_file = true;
    if (int rc = PrepareTarget(t, size, force, &is_file); rc != 0) return rc;
    // Each target alone first: its size, its kind, and that it is not open elsewhere.
    udax::RegionOptions probe;
    probe.emulate_poison = false;
    auto region = udax::Region::Open(t, probe);
    if (!region.ok()) return Fail(t, region.status().message());
    if ((*region)->kind() == udax::RegionKind::kDevdax) {
      any_device = true;
      if ((*region)->alignment() > udax::DeviceUnit(udax::kAuSize4K)) {
        return Fail(t, "device alignment above 2 MiB is not supported in a multi-device filesystem");
      }
    }
    sizes.push_back((*region)->size());
  }
  if (au_text == "auto" && any_device) params.au_size = udax::kAuSize2M;
  params.device_sizes = sizes;
  auto geometry = udax::ComputeGeometry(params);
  std::string joined;
  for (const std::string& t : targets) joined += (joined.empty() ? "" : ",") + t;
  if (!geometry.ok()) return Fail(joined, geometry.status().message());
  std::vector<uint64_t> lengths;
  for (uint32_t d = 0; d < geometry->device_count; ++d) lengths.push_back(geometry->devices[d].length);
  auto span = udax::SpanRegion::Create(targets, lengths, udax::RegionOptions{});
  if (!span.ok()) return Fail(joined, span.status().message());
  udax::Status status = udax::Filesystem::Format(span->get(), params);
  if (!status.ok()) return Fail(joined, status.message());
  if (!quiet) PrintSummary(joined, udax::RegionKindName((*span)->kind()), *geometry);
  return 0;
}

int main(int argc, char** argv) {
  CLI::App app{"Make a udaxfs filesystem on a devdax device, a DAX file or an image file."};
  // One line on stderr for a usage error, as every udaxfs tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("mkfs.udaxfs: ") + e.what() + " (--help for usage)\n";
  });
  std::vector<std::string> targets;
  std::string size_text, au_text = "auto", label;
  uint64_t bytes_per_inode = 8192;
  bool force = false, quiet = false, no_copies = false;
  app.add_option("target", targets,
                 "device or image file; several make one filesystem over all of them")
      ->required();
  app.add_option("-s,--size", size_text,
                 "filesystem size (e.g. 1G); creates or resizes an image file (each one, "
                 "with several)");
  app.add_option("--au", au_text, "allocation unit: 4k, 2m or auto (device alignment)")
      ->check(CLI::IsMember({"4k", "2m", "auto"}, CLI::ignore_case));
  app.add_option("-i,--bytes-per-inode", bytes_per_inode, "one inode per this many bytes")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 30));
  app.add_option("-L,--label", label, "volume label (up to 31 bytes)");
  app.add_flag("--no-metadata-copies", no_copies,
               "keep one copy of the inode table, directories, extent blocks, attributes "
               "and symlink targets (default: two, so one bad block costs no metadata)");
  app.add_flag("-f,--force", force, "overwrite an existing udaxfs");
  app.add_flag("-q,--quiet", quiet, "print nothing on success");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  std::optional<uint64_t> size;
  if (!size_text.empty()) {
    size = udax::ParseSize(size_text);
    if (!size || *size == 0) {
      fprintf(stderr, "mkfs.udaxfs: bad size '%s'\n", size_text.c_str());
      return kExitUsage;
    }
  }
  if (label.size() > 31) {
    fprintf(stderr, "mkfs.udaxfs: label longer than 31 bytes\n");
    return kExitUsage;
  }

  udax::MkfsParams params;
  params.bytes_per_inode = bytes_per_inode;
  params.label = label;
  params.meta_copies = !no_copies;
  params.root_uid = getuid();
  params.root_gid = getgid();
  params.au_size = au_text == "2m" || au_text == "2M" ? udax::kAuSize2M : udax::kAuSize4K;
  if (targets.size() > 1) return FormatSeveral(targets, size, au_text, force, quiet, params);
  const std::string& target = targets[0];
  {
    // Validate the geometry before touching the target.
    struct stat st;
    const bool exists = stat(target.c_str(), &st) == 0;
    if (exists && S_ISCHR(st.st_mode) && au_text == "auto") params.au_size = udax::kAuSize2M;
    const uint64_t planned = size ? *size : exists && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    if (planned != 0 || (exists && S_ISREG(st.st_mode))) {
      params.region_size = planned;
      auto geometry = udax::ComputeGeometry(params);
      if (!geometry.ok()) return Fail(target, geometry.status().message());
    }
  }
  bool is_file = true;
  if (int rc = PrepareTarget(target, size, force, &is_file); rc != 0) return rc;

  udax::RegionOptions ro;
  auto region = udax::Region::Open(target, ro);
  if (!region.ok()) return Fail(target, region.status().message());
  if (size && *size > (*region)->size()) return Fail(target, "size is larger than the device");
  if (au_text == "auto" && (*region)->kind() == udax::RegionKind::kDevdax) {
    params.au_size = (*region)->alignment() >= udax::kAuSize2M ? udax::kAuSize2M : udax::kAuSize4K;
  }
  params.region_size = size ? *size : (*region)->size();
  udax::Status status = udax::Filesystem::Format(region->get(), params);
  if (!status.ok()) return Fail(target, status.message());
  if (!quiet) {
    auto sb = udax::ComputeGeometry(params);
    PrintSummary(target, udax::RegionKindName((*region)->kind()), *sb);
  }
  return 0;
}
