// badblock_list.cc -- parsing, merging and atomic replacement of badblocks lists.
#include "fs/format/badblock_list.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <thread>

#include "fs/base/unique_fd.h"
#include "fs/base/safe_file.h"
#include "fs/format/state_dir.h"

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

Result<BadblockList> ReadBadblockListFile(const std::string& path) {
  Result<UniqueFd> fd = OpenStateFile(path, O_RDONLY);
  if (!fd.ok()) {
    if (fd.status().code() == ENOENT) return BadblockList();
    return fd.status();
  }
  UDAX_ASSIGN_OR_RETURN(std::string text, ReadCapped(fd->get(), path, kMaxBadblockListBytes));
  return BadblockList::Parse(text, path);
}

namespace {

// LOCK_NB, retried with a growing pause until `wait` has passed: never an unbounded wait
// (see the file comment in badblock_list.h).
Status LockWithin(int fd, const std::string& path, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return Status::FromErrno(path + ": flock");
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Busy(path + ": still locked by another writer after " +
                          std::to_string(wait.count()) + " ms");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

}  // namespace

Status UpdateBadblockListFile(const std::string& path,
                              const std::function<Status(BadblockList*)>& edit,
                              BadblockList* after, std::chrono::milliseconds lock_wait) {
  // We create files here (the lock, the temporary): the directory must be one nobody
  // else can plant them in.
  UDAX_RETURN_IF_ERROR(CheckStateDir(DirName(path)));
  // A separate lock file: the list itself is replaced by rename, so a lock on it would
  // be on an inode the next writer no longer opens. The lock file is never removed
  // (removing it would let two writers hold locks on different inodes).
  const std::string lock_path = path + ".lock";
  UDAX_ASSIGN_OR_RETURN(UniqueFd lock, OpenStateFile(lock_path, O_RDWR | O_CREAT, 0600));
  UDAX_RETURN_IF_ERROR(LockWithin(lock.get(), lock_path, lock_wait));
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(path));
  UDAX_RETURN_IF_ERROR(edit(&list));
  if (list.empty()) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(path + ": unlink");
    const std::string dir = DirName(path);
    UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd.valid() || fsync(dfd.get()) != 0) return Status::FromErrno(dir + ": fsync");
  } else {
    UDAX_RETURN_IF_ERROR(ReplaceStateFile(path, list.ToText(), 0600));
  }
  if (after != nullptr) *after = std::move(list);
  return Status::Ok();
}

}  // namespace udax
