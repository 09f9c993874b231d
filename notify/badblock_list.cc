// badblock_list.cc -- parsing, merging and atomic replacement of badblocks lists.
#include "notify/badblock_list.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "fs/region/unique_fd.h"

namespace udax {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// One unsigned decimal number at the front of *s (digits only: no sign, no 0x), which
// is consumed. False on anything else or on overflow.
bool TakeNumber(std::string_view* s, uint64_t* out) {
  const char* first = s->data();
  const char* last = first + s->size();
  if (first == last || *first < '0' || *first > '9') return false;
  auto [ptr, ec] = std::from_chars(first, last, *out, 10);
  if (ec != std::errc()) return false;
  s->remove_prefix(static_cast<size_t>(ptr - first));
  return true;
}

Result<std::string> ReadWholeFile(int fd, const std::string& path) {
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(path + ": read");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(path + ": write");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The rename is durable only once the directory entry is.
Status SyncDir(const std::string& path) {
  const std::string dir = DirOf(path);
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(dir + ": open");
  if (fsync(fd.get()) != 0) return Status::FromErrno(dir + ": fsync");
  return Status::Ok();
}

Status ReplaceFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return Status::FromErrno(tmp + ": create");
    Status st = WriteAll(fd.get(), text, tmp);
    if (st.ok() && fsync(fd.get()) != 0) st = Status::FromErrno(tmp + ": fsync");
    if (!st.ok()) {
      unlink(tmp.c_str());
      return st;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::FromErrno(path + ": rename");
    unlink(tmp.c_str());
    return st;
  }
  return SyncDir(path);
}

}  // namespace

Status BadblockList::ValidateRange(uint64_t sector, uint64_t count) {
  if (count == 0) return Status::InvalidArgument("a bad block range needs a count of at least 1");
  if (sector > kMaxBadblockSector || count > kMaxBadblockSector - sector) {
    return Status::InvalidArgument("bad block range " + std::to_string(sector) + "+" +
                                   std::to_string(count) + " is too large");
  }
  return Status::Ok();
}

Result<BadblockList> BadblockList::Parse(std::string_view text, const std::string& what) {
  BadblockList list;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = what + ":" + std::to_string(line_no) + ": ";
    uint64_t sector = 0, count = 0;
    std::string_view rest = line;
    if (!TakeNumber(&rest, &sector) || rest.empty() || !IsBlank(rest.front())) {
      return Status::InvalidArgument(where + "expected \"SECTOR COUNT\", got \"" +
                                     std::string(line) + "\"");
    }
    rest = Trim(rest);
    if (!TakeNumber(&rest, &count) || !rest.empty()) {
      return Status::InvalidArgument(where + "expected \"SECTOR COUNT\", got \"" +
                                     std::string(line) + "\"");
    }
    Status st = ValidateRange(sector, count);
    if (!st.ok()) return Status::InvalidArgument(where + st.message());
    list.Add(sector, count);
  }
  return list;
}

std::string BadblockList::ToText() const {
  std::string out =
      "# udaxfs badblocks v1: SECTOR COUNT per line, 512-byte sectors from the region start\n";
  for (const BadblockRange& r : ranges_) {
    out += std::to_string(r.sector) + " " + std::to_string(r.count) + "\n";
  }
  return out;
}

void BadblockList::Add(uint64_t sector, uint64_t count) {
  if (count == 0) return;
  uint64_t start = sector, end = sector + count;
  // Every range that overlaps or touches [start, end) is absorbed into it.
  auto first = std::lower_bound(ranges_.begin(), ranges_.end(), start,
                                [](const BadblockRange& r, uint64_t s) { return r.end() < s; });
  auto last = first;
  while (last != ranges_.end() && last->sector <= end) {
    start = std::min(start, last->sector);
    end = std::max(end, last->end());
    ++last;
  }
  first = ranges_.erase(first, last);
  ranges_.insert(first, BadblockRange{start, end - start});
}

void BadblockList::Remove(uint64_t sector, uint64_t count) {
  if (count == 0) return;
  const uint64_t start = sector, end = sector + count;
  std::vector<BadblockRange> out;
  out.reserve(ranges_.size() + 1);
  for (const BadblockRange& r : ranges_) {
    if (r.end() <= start || r.sector >= end) {
      out.push_back(r);
      continue;
    }
    if (r.sector < start) out.push_back({r.sector, start - r.sector});
    if (r.end() > end) out.push_back({end, r.end() - end});
  }
  ranges_ = std::move(out);
}

BadblockList BadblockList::Minus(const BadblockList& other) const {
  BadblockList out = *this;
  for (const BadblockRange& r : other.ranges_) out.Remove(r.sector, r.count);
  return out;
}

bool BadblockList::Overlaps(uint64_t sector, uint64_t count) const {
  if (count == 0) return false;
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), sector,
                             [](const BadblockRange& r, uint64_t s) { return r.end() <= s; });
  return it != ranges_.end() && it->sector < sector + count;
}

uint64_t BadblockList::sector_count() const {
  uint64_t n = 0;
  for (const BadblockRange& r : ranges_) n += r.count;
  return n;
}

std::string BadblockListPath(const std::string& image) { return image + ".badblocks"; }

Result<BadblockList> ReadBadblockListFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return BadblockList();
    return Status::FromErrno(path + ": open");
  }
  UDAX_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(fd.get(), path));
  return BadblockList::Parse(text, path);
}

Status UpdateBadblockListFile(const std::string& path,
                              const std::function<Status(BadblockList*)>& edit,
                              BadblockList* after) {
  // A separate lock file: the list itself is replaced by rename, so a lock on it would
  // be on an inode the next writer no longer opens. The lock file is never removed
  // (removing it would let two writers hold locks on different inodes).
  const std::string lock_path = path + ".lock";
  UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return Status::FromErrno(lock_path + ": open");
  while (flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Status::FromErrno(lock_path + ": flock");
  }
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(path));
  UDAX_RETURN_IF_ERROR(edit(&list));
  if (list.empty()) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(path + ": unlink");
    UDAX_RETURN_IF_ERROR(SyncDir(path));
  } else {
    UDAX_RETURN_IF_ERROR(ReplaceFile(path, list.ToText()));
  }
  if (after != nullptr) *after = std::move(list);
  return Status::Ok();
}

}  // namespace udax
