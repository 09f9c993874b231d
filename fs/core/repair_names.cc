// repair_names.cc -- fsck pass 3: directories, names, the orphan list, /lost+found and
// link counts, on maps pass 2 made consistent.
//
// This pass changes the namespace through the filesystem's own directory code (DirOps),
// so every change is an ordinary journal transaction and the hashed directories stay
// well formed. A directory that cannot be read is rebuilt from the entries that survive
// in its blocks: an entry is trusted when its stored name hash matches its name (a 32-bit
// check of its own) and it names an inode in use.
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "fs/core/dir_ops.h"
#include "fs/core/repair.h"

namespace udax {
namespace {

std::string Num(uint64_t v) { return std::to_string(v); }

bool ValidName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace

Status Repairer::TakeOrphans(std::vector<bool>* orphan) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const uint64_t n = fs.sb_.inode_count;
  uint64_t cur = fs.state_.orphan_head;
  uint64_t count = 0;
  while (cur != 0) {
    auto inode = cur < n && fs.space_.InoAllocated(cur) && !(*orphan)[cur]
                     ? fs.Get(cur) : Result<Inode*>(Status::Corruption("bad link"));
    if (!inode.ok()) {
      Fixed("orphan list: link to inode " + Num(cur) + " is bad: list cut there");
      break;
    }
    (*orphan)[cur] = true;
    ++count;
    cur = (*inode)->d.orphan_next;
    (*inode)->d.orphan_next = 0;
    (*inode)->orphan = false;
    fs.StageInode(*inode);
  }
  if (fs.state_.orphan_head == 0) return Status::Ok();
  // The list is taken apart here; each of its inodes is freed below once it is sure that
  // no name reaches it (as a mount would free it).
  fs.state_.orphan_head = 0;
  JournalStateSeal(&fs.state_);
  fs.txn_.WriteObj(fs.journal_->state_offset(), fs.state_);
  out_.notes.push_back("orphan list: " + Num(count) + " inodes");
  return fs.Commit();
}

Status Repairer::EnsureRoot() {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  Inode* old = nullptr;
  if (fs.space_.InoAllocated(kRootIno)) {
    auto root = fs.Get(kRootIno);
    if (root.ok() && S_ISDIR((*root)->d.mode)) {
      // Link counts are set at the end; until then the root must not look removed, or
      // /lost+found cannot be made in it.
      if ((*root)->d.nlink != 0) return Status::Ok();
      Fixed("root directory: link count 0: set to 2 (corrected below if need be)");
      (*root)->d.nlink = 2;
      fs.StageInode(*root);
      return fs.Commit();
    }
    if (root.ok()) old = *root;
  }
  // A root that is not a directory gives back its space; a new empty root takes its place
  // and everything below the old one is found again through /lost+found.
  if (old) {
    UDAX_RETURN_IF_ERROR(fs.LoadExtents(old));
    UDAX_RETURN_IF_ERROR(fs.RemoveExtents(old, 0, ~uint64_t{0}));
  }
  DiskInode prev;
  UDAX_RETURN_IF_ERROR(fs.txn_.Read(*fs.region_, InodeOffset(fs.sb_, kRootIno), &prev, sizeof(prev)));
  fs.inodes_.erase(kRootIno);
  auto inode = std::make_unique<Inode>(kRootIno);
  DiskInode& d = inode->d;
  std::memset(&d, 0, sizeof(d));
  d.magic = kInodeMagic;
  d.generation = prev.generation + 1;
  d.mode = S_IFDIR | 0755;
  d.nlink = 2;
  d.parent = kRootIno;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  d.atime_sec = d.mtime_sec = d.ctime_sec = d.btime_sec = ts.tv_sec;
  d.atime_nsec = d.mtime_nsec = d.ctime_nsec = d.btime_nsec = static_cast<uint32_t>(ts.tv_nsec);
  inode->extents.loaded = true;
  inode->nlookup = 1;
  Inode* root = inode.get();
  fs.inodes_[kRootIno] = std::move(inode);
  UDAX_RETURN_IF_ERROR(DirOps(&fs).Init(root));
  if (!fs.space_.InoAllocated(kRootIno)) fs.space_.StageAllocIno(&fs.txn_, kRootIno);
  fs.StageInode(root);
  UDAX_RETURN_IF_ERROR(fs.Commit());
  Fixed("root directory damaged: recreated empty (what it held goes to /lost+found)");
  return Status::Ok();
}

Status Repairer::SalvageDirectory(Inode* dir, std::vector<DirListEntry>* entries) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  std::unordered_set<std::string> names;
  uint8_t block[kBlockSize];
  for (const auto& [file_au, e] : dir->extents.by_file) {
    if (file_au >= kXattrFileAu) break;
    for (uint64_t off = e.phys_au * sb.au_size; off < (e.phys_au + e.len) * sb.au_size;
         off += kBlockSize) {
      // The block as it decodes from either copy, else the bytes of one that reads.
      bool have = fs.region_->ReadSafe(off, block, kBlockSize).ok();
      DirBlock decoded;
      if ((!have || !DirBlockDecode(block, &decoded).ok()) && HasMetaCopies(sb) &&
          CopyOffset(sb, off) != 0) {
        uint8_t other[kBlockSize];
        if (fs.region_->ReadSafe(CopyOffset(sb, off), other, kBlockSize).ok() &&
            (!have || DirBlockDecode(other, &decoded).ok())) {
          std::memcpy(block, other, kBlockSize);
          have = true;
        }
      }
      if (!have) continue;
      // Entries are packed after the header; where one is garbled, step a byte at a time
      // until the next entry whose hash matches its name.
      size_t p = sizeof(DiskDirBlockHeader);
      while (p + kDirEntryFixed < kBlockSize) {
        uint64_t ino;
        uint32_t hash;
        std::memcpy(&ino, block + p, 8);
        std::memcpy(&hash, block + p + 8, 4);
        const size_t len = block[p + 13];
        const bool fits = len > 0 && p + kDirEntryFixed + len <= kBlockSize;
        const std::string_view name(reinterpret_cast<const char*>(block + p + kDirEntryFixed),
                                    fits ? len : 0);
        if (!fits || ino == 0 || ino >= sb.inode_count || !ValidName(name) ||
            NameHash(name, sb.hash_seed) != hash) {
          ++p;
          continue;
        }
        p += kDirEntryFixed + len;
        if (!fs.space_.InoAllocated(ino) || ino == kRootIno || ino == dir->ino) continue;
        auto target = fs.Get(ino);
        if (!target.ok() || !names.insert(std::string(name)).second) continue;
        entries->push_back({ino, static_cast<uint8_t>(IFTODT((*target)->d.mode)), std::string(name)});
      }
    }
  }
  return Status::Ok();
}

Status Repairer::RebuildDirectory(Inode* dir, const std::vector<DirListEntry>& entries) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  DirOps dirs(&fs);
  UDAX_RETURN_IF_ERROR(fs.RemoveExtents(dir, 0, kXattrFileAu));
  UDAX_RETURN_IF_ERROR(dirs.Init(dir));
  for (const DirListEntry& e : entries) {
    UDAX_RETURN_IF_ERROR(dirs.Insert(dir, e.name, e.ino, e.type));
    if (fs.txn_.log_bytes() > fs.journal_->capacity() / 4) {
      fs.StageInode(dir);
      UDAX_RETURN_IF_ERROR(fs.Commit());
    }
  }
  fs.StageInode(dir);
  return fs.Commit();
}

Status Repairer::ReadDirectory(Inode* dir) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  std::vector<DirListEntry> entries;
  Status st = fs.LoadExtents(dir);
  if (!st.ok()) return st;  // pass 2 made every extent map loadable
  st = DirOps(&fs).List(dir, &entries);
  if (st.ok()) {
    dirs_[dir->ino] = std::move(entries);
    return CheckEntries(dir);
  }
  entries.clear();
  UDAX_RETURN_IF_ERROR(SalvageDirectory(dir, &entries));
  Fixed("directory " + Num(dir->ino) + ": " + st.message() + ": rebuilt from the " +
        Num(entries.size()) + " entries that survived");
  UDAX_RETURN_IF_ERROR(RebuildDirectory(dir, entries));
  dirs_[dir->ino] = std::move(entries);
  return Status::Ok();
}

Status Repairer::CheckEntries(Inode* dir) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  DirOps dirs(&fs);
  std::vector<DirListEntry>& entries = dirs_[dir->ino];
  std::vector<DirListEntry> kept;
  std::unordered_set<std::string> names, twice;
  for (const DirListEntry& e : entries) {
    if (!names.insert(e.name).second) twice.insert(e.name);
  }
  names.clear();
  // DirOps removes and replaces by name: with a name listed twice it could take the
  // wrong entry, so such a directory is rebuilt from the entries it keeps.
  bool rebuild = !twice.empty();
  for (DirListEntry& e : entries) {
    const std::string where = "directory " + Num(dir->ino) + " entry '" + e.name + "'";
    Result<Inode*> target = Status::NotFound("");
    if (e.ino != 0 && e.ino < fs.sb_.inode_count && e.ino != kRootIno && e.ino != dir->ino &&
        fs.space_.InoAllocated(e.ino)) {
      target = fs.Get(e.ino);
    }
    if (!target.ok()) {
      Fixed(where + " names inode " + Num(e.ino) + ", which is free or may not be named: removed");
      if (!rebuild && !dirs.Remove(dir, e.name).ok()) rebuild = true;
      continue;
    }
    if (!names.insert(e.name).second) {  // Remove would take both: rebuild without it
      Fixed(where + ": a second entry of that name: removed");
      rebuild = true;
      continue;
    }
    const uint8_t type = static_cast<uint8_t>(IFTODT((*target)->d.mode));
    if (e.type != type) {
      Fixed(where + ": wrong file type: corrected");
      e.type = type;
      if (!rebuild && !dirs.Replace(dir, e.name, e.ino, type).ok()) rebuild = true;
    }
    kept.push_back(std::move(e));
  }
  entries = std::move(kept);
  if (rebuild) {
    Fixed("directory " + Num(dir->ino) + ": rebuilt");
    return RebuildDirectory(dir, entries);
  }
  if (dir->d.dir_entries != entries.size()) {
    Fixed("directory " + Num(dir->ino) + ": counted " + Num(dir->d.dir_entries) +
          " entries, holds " + Num(entries.size()));
    dir->d.dir_entries = entries.size();
  }
  fs.StageInode(dir);
  return CommitIfLarge();
}

// Marks everything reachable from directory `from` (already marked), removing second
// names of directories on the way; parent_ records who names each directory.
Status Repairer::Walk(uint64_t from, std::vector<bool>* reached) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  std::vector<uint64_t> stack = {from};
  while (!stack.empty()) {
    const uint64_t d = stack.back();
    stack.pop_back();
    std::vector<DirListEntry>& entries = dirs_[d];
    for (size_t i = 0; i < entries.size();) {
      const DirListEntry& e = entries[i];
      UDAX_ASSIGN_OR_RETURN(Inode * child, fs.Get(e.ino));
      if (!S_ISDIR(child->d.mode)) {
        (*reached)[e.ino] = true;
        ++i;
        continue;
      }
      if ((*reached)[e.ino]) {
        Fixed("directory " + Num(d) + " entry '" + e.name + "': a second name of directory " +
              Num(e.ino) + ": removed");
        UDAX_ASSIGN_OR_RETURN(Inode * dir, fs.Get(d));
        const std::string name = e.name;
        entries.erase(entries.begin() + static_cast<ptrdiff_t>(i));
        if (DirOps(&fs).Remove(dir, name).ok()) {
          fs.StageInode(dir);
          UDAX_RETURN_IF_ERROR(fs.Commit());
        } else {  // not where its hash says (a damaged bucket that still verifies)
          UDAX_RETURN_IF_ERROR(RebuildDirectory(dir, entries));
        }
        continue;
      }
      (*reached)[e.ino] = true;
      parent_[e.ino] = d;
      stack.push_back(e.ino);
      ++i;
    }
  }
  return Status::Ok();
}

Result<Inode*> Repairer::LostAndFound() {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  if (lost_found_) return fs.Get(lost_found_);
  std::string name = "lost+found";
  for (int k = 1;; ++k) {
    auto& root = dirs_[kRootIno];
    auto it = std::find_if(root.begin(), root.end(),
                           [&](const DirListEntry& e) { return e.name == name; });
    if (it == root.end()) break;
    if (it->type == DT_DIR) {
      lost_found_ = it->ino;
      return fs.Get(lost_found_);
    }
    name = "lost+found." + Num(k);
  }
  // fsck works below the flags a user sets: an immutable or append-only root (or one a
  // damaged inode's resealed fields say is) still gets its /lost+found, as in e2fsck.
  UDAX_ASSIGN_OR_RETURN(Inode * root, fs.Get(kRootIno));
  const uint32_t root_flags = root->d.attr_flags;
  root->d.attr_flags &= ~(kAttrImmutable | kAttrAppend);
  auto made = fs.Mkdir(kRootIno, name, 0700, Caller{});
  if (root->d.attr_flags != root_flags) {
    root->d.attr_flags = root_flags;
    fs.StageInode(root);
    UDAX_RETURN_IF_ERROR(fs.Commit());
  }
  if (!made.ok()) return Status::Error(made.status().code(), "cannot create /" + name + ": " +
                                                                  made.status().message());
  lost_found_ = made->ino;
  dirs_[kRootIno].push_back({lost_found_, DT_DIR, name});
  dirs_[lost_found_] = {};
  parent_[lost_found_] = kRootIno;
  Fixed("created /" + name);
  return fs.Get(lost_found_);
}

Status Repairer::LinkIntoLostAndFound(uint64_t ino) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  UDAX_ASSIGN_OR_RETURN(Inode * lf, LostAndFound());
  UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
  UDAX_RETURN_IF_ERROR(fs.LoadExtents(lf));
  std::vector<DirListEntry>& entries = dirs_[lf->ino];
  std::string name = "#" + Num(ino);
  for (int k = 1; std::any_of(entries.begin(), entries.end(),
                              [&](const DirListEntry& e) { return e.name == name; });
       ++k) {
    name = "#" + Num(ino) + "." + Num(k);
  }
  const uint8_t type = static_cast<uint8_t>(IFTODT(inode->d.mode));
  UDAX_RETURN_IF_ERROR(DirOps(&fs).Insert(lf, name, ino, type));
  entries.push_back({ino, type, name});
  if (S_ISDIR(inode->d.mode)) {
    parent_[ino] = lf->ino;
    lf->d.nlink++;
  }
  fs.StageInode(lf);
  fs.StageInode(inode);
  UDAX_RETURN_IF_ERROR(fs.Commit());
  Fixed("inode " + Num(ino) + ": unreachable: moved to /lost+found/" + name);
  return Status::Ok();
}

// Links an unreachable inode into /lost+found and marks what it makes reachable; when
// that fails (no space, no inode for /lost+found) the inode stays unreachable and the
// second check reports it.
Status Repairer::Rescue(uint64_t ino, std::vector<bool>* reached) {
  Status st = LinkIntoLostAndFound(ino);
  if (!st.ok()) {
    if (st.code() == EIO) return st;
    out_.notes.push_back("inode " + Num(ino) + ": unreachable, not moved: " + st.message());
    return Status::Ok();
  }
  (*reached)[lost_found_] = true;
  (*reached)[ino] = true;
  fs_->AssumeUnshared();
  UDAX_ASSIGN_OR_RETURN(Inode * inode, fs_->Get(ino));
  return S_ISDIR(inode->d.mode) ? Walk(ino, reached) : Status::Ok();
}

Status Repairer::FixLinkCounts(const std::vector<bool>& reached) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const uint64_t n = fs.sb_.inode_count;
  std::vector<uint32_t> names(n, 0), subdirs(n, 0);
  for (const auto& [d, entries] : dirs_) {
    if (!reached[d]) continue;
    for (const DirListEntry& e : entries) {
      names[e.ino]++;
      if (e.type == DT_DIR) subdirs[d]++;
    }
  }
  for (uint64_t ino = 1; ino < n; ++ino) {
    if (!reached[ino] || !fs.space_.InoAllocated(ino)) continue;
    UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
    DiskInode& d = inode->d;
    const bool dir = S_ISDIR(d.mode);
    const uint64_t want = dir ? 2 + subdirs[ino] : names[ino];
    bool changed = false;
    if (d.nlink != want) {
      Fixed("inode " + Num(ino) + ": link count " + Num(d.nlink) + ", should be " + Num(want) +
            ": corrected");
      d.nlink = static_cast<uint32_t>(want);
      changed = true;
    }
    if (dir && d.parent != parent_[ino]) {
      Fixed("directory " + Num(ino) + ": '..' was " + Num(d.parent) + ", should be " +
            Num(parent_[ino]) + ": corrected");
      d.parent = parent_[ino];
      changed = true;
    }
    if (changed) {
      fs.StageInode(inode);
      UDAX_RETURN_IF_ERROR(CommitIfLarge());
    }
  }
  return fs.Commit();
}

Status Repairer::RepairNamespace() {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const uint64_t n = fs.sb_.inode_count;
  std::vector<bool> orphan(n, false);
  UDAX_RETURN_IF_ERROR(TakeOrphans(&orphan));
  UDAX_RETURN_IF_ERROR(EnsureRoot());
  parent_.assign(n, 0);
  parent_[kRootIno] = kRootIno;
  for (uint64_t ino = 1; ino < n; ++ino) {
    if (ino % 4096 == 0) Progress(5, ino, n);
    if (!fs.space_.InoAllocated(ino)) continue;
    UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
    if (S_ISDIR(inode->d.mode)) UDAX_RETURN_IF_ERROR(ReadDirectory(inode));
  }
  std::vector<bool> reached(n, false);
  reached[kRootIno] = true;
  UDAX_RETURN_IF_ERROR(Walk(kRootIno, &reached));

  // What no name reaches: orphans and inodes without links are freed (as a mount frees
  // the orphan list); the rest goes to /lost+found, directories first, each after the
  // unreachable directory that names it (so a lost subtree keeps its shape).
  auto free_inode = [&](uint64_t ino) -> Status {
    fs.AssumeUnshared();
    UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
    if (orphan[ino]) {
      out_.notes.push_back("orphan inode " + Num(ino) + " freed");
    } else {
      Fixed("inode " + Num(ino) + ": unreachable and without links: freed");
    }
    UDAX_RETURN_IF_ERROR(fs.LoadExtents(inode));
    UDAX_RETURN_IF_ERROR(fs.FreeInode(inode));
    UDAX_RETURN_IF_ERROR(fs.Commit());
    dirs_.erase(ino);
    fs.inodes_.erase(ino);
    return Status::Ok();
  };
  std::vector<uint64_t> lost_dirs;
  for (uint64_t ino = 1; ino < n; ++ino) {
    if (reached[ino] || !fs.space_.InoAllocated(ino)) continue;
    UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
    if (!S_ISDIR(inode->d.mode)) continue;
    if (orphan[ino] || inode->d.nlink == 0) {
      UDAX_RETURN_IF_ERROR(free_inode(ino));
    } else {
      lost_dirs.push_back(ino);
    }
  }
  while (!lost_dirs.empty()) {
    std::unordered_set<uint64_t> named_by_lost;
    for (uint64_t d : lost_dirs) {
      if (reached[d]) continue;
      for (const DirListEntry& e : dirs_[d]) {
        if (e.type == DT_DIR && e.ino != d) named_by_lost.insert(e.ino);
      }
    }
    std::vector<uint64_t> next;
    bool linked = false;
    for (uint64_t d : lost_dirs) {
      if (reached[d]) continue;
      if (named_by_lost.count(d)) {
        next.push_back(d);
        continue;
      }
      linked = true;
      UDAX_RETURN_IF_ERROR(Rescue(d, &reached));
    }
    if (!linked && !next.empty()) {  // a cycle of lost directories: break it anywhere
      UDAX_RETURN_IF_ERROR(Rescue(next[0], &reached));
      if (!reached[next[0]]) break;   // could not link it: leave the rest as they are
    }
    lost_dirs = std::move(next);
  }
  for (uint64_t ino = 1; ino < n; ++ino) {
    if (reached[ino] || !fs.space_.InoAllocated(ino)) continue;
    UDAX_ASSIGN_OR_RETURN(Inode * inode, fs.Get(ino));
    if (orphan[ino] || inode->d.nlink == 0) {
      UDAX_RETURN_IF_ERROR(free_inode(ino));
      continue;
    }
    UDAX_RETURN_IF_ERROR(Rescue(ino, &reached));
  }
  UDAX_RETURN_IF_ERROR(FixLinkCounts(reached));
  Progress(5, 1, 1);
  return Status::Ok();
}

}  // namespace udax
