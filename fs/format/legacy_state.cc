// legacy_state.cc -- one-time, checked migration of IMAGE.badblocks and IMAGE.events.
#include "fs/format/legacy_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fs/format/badblock_list.h"
#include "fs/base/safe_file.h"
#include "fs/format/state_dir.h"

namespace udax {
namespace {

void Say(const std::string& what) { std::fprintf(stderr, "udaxfs: %s\n", what.c_str()); }

bool OwnerOk(uid_t uid, const struct stat& image_st) { return uid == 0 || uid == image_st.st_uid; }

// Why the directory holding the image cannot vouch for what lies in it, or "".
std::string DirDistrust(const std::string& dir, const struct stat& image_st) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return dir + ": " + std::string(strerror(errno));
  if (!OwnerOk(st.st_uid, image_st)) {
    return "its directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
           ", neither root nor the image's owner";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "its directory " + dir + " is writable by group or others (anyone could have planted it)";
  }
  return "";
}

// Opens and reads a legacy file when it can be trusted. ENOENT when there is none;
// any other error says why it was refused.
Result<std::string> ReadLegacy(const std::string& path, const struct stat& image_st,
                               const std::string& dir_distrust, size_t cap) {
  struct stat lst;
  if (lstat(path.c_str(), &lst) != 0) return Status::FromErrno(path);
  // Refused before it is even opened: a FIFO planted in a sticky directory must not
  // cost us an open, however non-blocking.
  if (!dir_distrust.empty()) return Status::Error(EPERM, dir_distrust);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    return Status::Error(errno, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Status::FromErrno("fstat");
  if (!S_ISREG(st.st_mode)) return Status::Error(EINVAL, "it is not a regular file");
  if (!OwnerOk(st.st_uid, image_st)) {
    return Status::Error(EPERM, "it is owned by uid " + std::to_string(st.st_uid) +
                                    ", neither root nor the image's owner");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(EPERM, "it is writable by group or others");
  }
  Result<std::string> text = ReadCapped(fd.get(), path, cap);
  if (!text.ok()) return Status::Error(text.status().code(), text.status().message());
  return text;
}

void Remove(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    Say(path + ": migrated, but could not be removed: " + strerror(errno));
  }
}

void MigrateList(const std::string& image, const struct stat& image_st, const TargetState& state,
                 const std::string& distrust) {
  const std::string legacy = image + ".badblocks";
  Result<std::string> text = ReadLegacy(legacy, image_st, distrust, kMaxBadblockListBytes);
  if (!text.ok()) {
    if (text.status().code() != ENOENT) {
      Say(legacy + ": ignored, not moved to " + state.badblocks + ": " + text.status().message());
    }
    return;
  }
  Result<BadblockList> old = BadblockList::Parse(*text, legacy);
  if (!old.ok()) {
    Say(legacy + ": ignored, not moved to " + state.badblocks + ": " + old.status().message());
    return;
  }
  Status st = UpdateBadblockListFile(state.badblocks, [&](BadblockList* list) {
    for (const BadblockRange& r : old->ranges()) list->Add(r.sector, r.count);
    return Status::Ok();
  });
  if (!st.ok()) {
    Say(legacy + ": could not be moved to " + state.badblocks + ": " + st.message());
    return;
  }
  Say(legacy + ": moved to " + state.badblocks);
  Remove(legacy);
  // The old lock: an empty file, of no use any more. Only a regular one is removed
  // (unlink never follows a symlink, but there is no reason to touch anything else).
  struct stat lst;
  if (lstat((legacy + ".lock").c_str(), &lst) == 0 && S_ISREG(lst.st_mode)) Remove(legacy + ".lock");
}

void MigrateLog(const std::string& image, const struct stat& image_st, const TargetState& state,
                const std::string& distrust) {
  const std::string legacy = image + ".events";
  Result<std::string> text = ReadLegacy(legacy, image_st, distrust, kMaxLegacyEventLogBytes);
  if (!text.ok()) {
    if (text.status().code() != ENOENT) {
      Say(legacy + ": ignored, not moved to " + state.events + ": " + text.status().message());
    }
    return;
  }
  Result<UniqueFd> log = OpenStateFile(state.events, O_WRONLY | O_APPEND | O_CREAT, 0600);
  Status st = log.ok() ? Status::Ok() : log.status();
  for (size_t done = 0; st.ok() && done < text->size();) {
    const ssize_t n = write(log->get(), text->data() + done, text->size() - done);
    if (n < 0 && errno != EINTR) st = Status::FromErrno(state.events + ": write");
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (st.ok() && fsync(log->get()) != 0) st = Status::FromErrno(state.events + ": fsync");
  if (!st.ok()) {
    Say(legacy + ": could not be moved to " + state.events + ": " + st.message());
    return;
  }
  Say(legacy + ": moved to " + state.events);
  Remove(legacy);
}

}  // namespace

void MigrateLegacyState(const std::string& image, const struct stat& image_st,
                        const TargetState& state) {
  struct stat st;
  const bool any = lstat((image + ".badblocks").c_str(), &st) == 0 ||
                   lstat((image + ".events").c_str(), &st) == 0;
  if (!any) return;  // the usual case: one lstat each, nothing more
  const std::string distrust = DirDistrust(DirName(image), image_st);
  MigrateList(image, image_st, state, distrust);
  MigrateLog(image, image_st, state, distrust);
}

}  // namespace udax
