// fs_xattr.cc -- extended attributes and POSIX ACLs.
//
// An inode's attributes are one blob (fs/format/xattr_blob.h) in its own extent map at
// file AUs kXattrFileAu.., so the bitmap, the reverse map (kind xattr) and fsck treat it
// like any other owned block. Every change rewrites the blob in place through the journal:
// one transaction holds the new bytes, the AUs it gained or lost and the inode, so an
// attribute change is atomic and durable when it returns, like every metadata operation.
//
// ACLs follow FUSE_CAP_POSIX_ACL's contract: the kernel checks permissions against them;
// we store them, keep the mode in step (set, chmod) and inherit default ACLs on create.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"
#include "fs/format/posix_acl.h"

namespace udax {
namespace {

constexpr std::string_view kUserPrefix = "user.";
constexpr std::string_view kTrustedPrefix = "trusted.";
constexpr std::string_view kSecurityPrefix = "security.";
constexpr size_t kMaxXattrName = 255;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool IsAclName(std::string_view name) {
  return name == kAclAccessXattr || name == kAclDefaultXattr;
}

// The namespaces Linux filesystems store; any other prefix is EOPNOTSUPP as on ext4.
Status CheckXattrName(std::string_view name) {
  if (name.empty() || name.size() > kMaxXattrName) {
    return Status::Error(ERANGE, "attribute name length out of range");
  }
  for (std::string_view prefix : {kUserPrefix, kTrustedPrefix, kSecurityPrefix}) {
    if (StartsWith(name, prefix)) {
      if (name.size() == prefix.size()) return Status::InvalidArgument("empty attribute name");
      return Status::Ok();
    }
  }
  if (IsAclName(name)) return Status::Ok();
  return Status::Error(EOPNOTSUPP, "unsupported attribute namespace");
}

void TouchCtime(DiskInode* d) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  d->ctime_sec = ts.tv_sec;
  d->ctime_nsec = static_cast<uint32_t>(ts.tv_nsec);
}


}  // namespace

bool Caller::InGroup(uint32_t g) const {
  return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
}

size_t Filesystem::XattrBlobLimit() const {
  // The whole blob goes through one journal transaction, beside the inode and its maps.
  return std::min<size_t>(kMaxXattrBytes, journal_->capacity() / 4);
}

uint64_t Filesystem::XattrAus(size_t blob_bytes) const {
  return (blob_bytes + sb_.au_size - 1) / sb_.au_size;
}

Status Filesystem::LoadXattrs(Inode* inode) {
  if (inode->xattrs) return Status::Ok();
  XattrMap attrs;
  const uint32_t len = inode->d.xattr_bytes;
  if (len > 0) {
    const std::string who = "inode " + std::to_string(inode->ino) + ": extended attributes: ";
    if (len > kMaxXattrBytes) return Status::IoError(who + "length out of range");
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    const uint64_t au = sb_.au_size;
    std::vector<uint8_t> blob(len);
    for (uint64_t done = 0; done < len;) {
      uint64_t run;
      const uint64_t phys = MapAu(*inode, kXattrFileAu + done / au, 1, &run);
      if (phys == 0) return Status::IoError(who + "blob not mapped");
      const uint64_t n = std::min<uint64_t>(au, len - done);
      UDAX_RETURN_IF_ERROR(ReadMeta(phys * au, blob.data() + done, n, nullptr));
      done += n;
    }
    Status st = XattrBlobDecode(blob.data(), blob.size(), inode->ino, &attrs);
    if (!st.ok() && HasMetaCopies(sb_)) {
      // The checksum covers the whole blob: try the whole second copy.
      std::vector<uint8_t> second(len);
      Status read = Status::Ok();
      for (uint64_t done = 0; done < len && read.ok(); done += au) {
        uint64_t run;
        const uint64_t phys = MapAu(*inode, kXattrFileAu + done / au, 1, &run);
        const uint64_t n = std::min<uint64_t>(au, len - done);
        read = txn_.ReadFrom(*region_, CopyOffset(sb_, phys * au), phys * au, second.data() + done, n);
      }
      attrs.clear();
      if (read.ok() && XattrBlobDecode(second.data(), len, inode->ino, &attrs).ok()) {
        st = Status::Ok();
        for (uint64_t done = 0; done < len && !options_.read_only && mend_copies_; done += au) {
          uint64_t run;
          const uint64_t phys = MapAu(*inode, kXattrFileAu + done / au, 1, &run);
          (void)MendCopy(CopyOffset(sb_, phys * au), phys * au, std::min<uint64_t>(au, len - done),
                         /*whole_blocks=*/true);
        }
      }
    }
    if (!st.ok()) return Status::IoError(st.message());
  }
  inode->xattrs = std::move(attrs);
  return Status::Ok();
}

Result<Inode*> Filesystem::PinForExtentChange(uint64_t ino) {
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  inode->nopen++;  // released by ExclusiveInode, under mu_ (filesystem.h)
  return inode;
}

Status Filesystem::MoveInlineTargetOut(Inode* inode) {
  const std::string target(inode->d.inline_data, inode->d.size);
  std::memset(inode->d.inline_data, 0, sizeof(inode->d.inline_data));
  inode->d.flags &= ~kInodeInlineData;
  inode->extents = ExtentMap{};
  inode->extents.loaded = true;  // no slots: they held the target
  UDAX_RETURN_IF_ERROR(AllocateRange(inode, 0, 1, false));
  uint64_t run;
  const uint64_t phys = MapAu(*inode, 0, 1, &run);
  // Durable before the transaction that maps the AU, like any data.
  return WriteFreshMeta(phys * sb_.au_size, target.data(), target.size());
}

Status Filesystem::StageXattrs(Inode* inode) {
  const std::vector<uint8_t> blob = XattrBlobEncode(*inode->xattrs, inode->ino);
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  const uint64_t need = XattrAus(blob.size());
  uint64_t have = 0;
  for (auto it = inode->extents.by_file.lower_bound(kXattrFileAu);
       it != inode->extents.by_file.end(); ++it) {
    have += it->second.len;
  }
  if (need < have) UDAX_RETURN_IF_ERROR(RemoveExtents(inode, kXattrFileAu + need, UINT64_MAX));
  if (need > have) UDAX_RETURN_IF_ERROR(AllocateRange(inode, kXattrFileAu + have, need - have, false));
  const uint64_t au = sb_.au_size;
  for (uint64_t done = 0; done < blob.size();) {
    uint64_t run;
    const uint64_t phys = MapAu(*inode, kXattrFileAu + done / au, 1, &run);
    if (phys == 0) return Status::IoError("extended attributes: blob not mapped");
    const uint64_t n = std::min<uint64_t>(au, blob.size() - done);
    txn_.Write(phys * au, blob.data() + done, n);
    done += n;
  }
  inode->d.xattr_bytes = static_cast<uint32_t>(blob.size());
  StageInode(inode);
  return Status::Ok();
}

Status Filesystem::SetXattr(uint64_t ino, std::string_view name, std::string_view value,
                            int flags, const Caller& caller) {
  UDAX_RETURN_IF_ERROR(CheckXattrName(name));
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Status::InvalidArgument("bad xattr flags");
  if (value.size() > kMaxXattrValue) return Status::Error(E2BIG, "attribute value too large");
  UDAX_ASSIGN_OR_RETURN(Inode * inode, PinForExtentChange(ino));
  // The blob's AUs are extents: the data path reads the extent map under rw alone.
  ExclusiveInode held(this, inode);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(RefuseImmutableOrAppend(*inode));  // xattr_permission()
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  XattrMap attrs = *inode->xattrs;
  const bool exists = attrs.find(name) != attrs.end();
  if ((flags & XATTR_CREATE) && exists) return Status::Error(EEXIST, "attribute exists");
  if ((flags & XATTR_REPLACE) && !exists) return Status::Error(ENODATA, "no such attribute");

  uint32_t mode = inode->d.mode;
  bool store = true;
  if (IsAclName(name)) {
    if (name == kAclDefaultXattr && !S_ISDIR(mode)) {
      return Status::Error(EACCES, "default ACL on a non-directory");
    }
    UDAX_ASSIGN_OR_RETURN(Acl acl, AclDecode(value));
    if (acl.empty()) {
      store = false;  // the kernel's empty ACL means "remove"
    } else if (name == kAclAccessXattr) {
      // posix_acl_update_mode: the mode follows the ACL; an ACL the mode says in full is
      // not stored; setgid goes unless the caller could have set it.
      store = AclEquivMode(acl, &mode);
      if (caller.uid != 0 && !caller.InGroup(inode->d.gid)) mode &= ~S_ISGID;
    }
  }
  if (store) {
    attrs[std::string(name)] = std::string(value);
  } else {
    attrs.erase(std::string(name));
  }
  const size_t bytes = XattrBlobSize(attrs);
  if (bytes > XattrBlobLimit()) return Status::NoSpace("no room for the attribute");
  const uint64_t have = XattrAus(inode->d.xattr_bytes);
  const uint64_t need = XattrAus(bytes);
  // A short symlink keeps its target where extent slots would be: it moves to an AU first.
  const bool uninline = need > 0 && (inode->d.flags & kInodeInlineData);
  const uint64_t extra = uninline ? 1 : 0;
  if (need + extra > have &&
      !HoldAus(need + extra - have + ExtentBlocksNeeded(*inode, need + extra - have), 0,
               inode->ino)) {
    return Status::NoSpace("no space for the attribute");
  }
  if (uninline) UDAX_RETURN_IF_ERROR(MoveInlineTargetOut(inode));
  inode->xattrs = std::move(attrs);
  inode->d.mode = mode;
  TouchCtime(&inode->d);
  UDAX_RETURN_IF_ERROR(StageXattrs(inode));
  return Commit();
}

Result<std::string> Filesystem::GetXattr(uint64_t ino, std::string_view name) {
  if (name.empty() || name.size() > kMaxXattrName) {
    return Status::Error(ERANGE, "attribute name length out of range");
  }
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  auto it = inode->xattrs->find(name);
  if (it == inode->xattrs->end()) {
    const bool known = CheckXattrName(name).ok();
    return Status::Error(known ? ENODATA : EOPNOTSUPP, "no such attribute");
  }
  return it->second;
}

Result<std::string> Filesystem::ListXattr(uint64_t ino) {
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  std::string names;
  for (const auto& [name, value] : *inode->xattrs) {
    names += name;
    names.push_back('\0');
  }
  return names;
}

Status Filesystem::RemoveXattr(uint64_t ino, std::string_view name) {
  UDAX_RETURN_IF_ERROR(CheckXattrName(name));
  UDAX_ASSIGN_OR_RETURN(Inode * inode, PinForExtentChange(ino));
  ExclusiveInode held(this, inode);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(RefuseImmutableOrAppend(*inode));  // xattr_permission()
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  auto it = inode->xattrs->find(name);
  if (it == inode->xattrs->end()) return Status::Error(ENODATA, "no such attribute");
  inode->xattrs->erase(it);
  TouchCtime(&inode->d);
  UDAX_RETURN_IF_ERROR(StageXattrs(inode));
  return Commit();
}

bool Filesystem::PrivDropPending(const Inode& inode, const PrivDrop* drop) {
  if (drop == nullptr || drop->staged) return false;
  // A data change concerns regular files; chown_common clears the bits of every
  // non-directory (a FIFO, socket or device node keeps no setuid either).
  if (S_ISDIR(inode.d.mode)) return false;
  if (drop->change == PrivChange::kData && !S_ISREG(inode.d.mode)) return false;
  // Every write asks: nearly always there is nothing to drop.
  return (inode.d.mode & (S_ISUID | S_ISGID)) != 0 || inode.d.xattr_bytes != 0;
}

Status Filesystem::StagePrivDrop(Inode* inode, PrivDrop* drop) {
  if (!PrivDropPending(*inode, drop)) {
    if (drop != nullptr) drop->staged = true;
    return Status::Ok();
  }
  constexpr std::string_view kCaps = "security.capability";
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  // The mode bits to drop, by setattr_should_drop_suidgid's rules.
  uint32_t mode_drop = 0;
  if (drop->suidgid) {
    mode_drop = inode->d.mode & S_ISUID;
    if ((inode->d.mode & S_ISGID) &&
        ((inode->d.mode & S_IXGRP) || !drop->exempt_from_sgid ||
         !drop->exempt_from_sgid(inode->d.gid))) {
      mode_drop |= S_ISGID;
    }
  }
  bool changed = false;
  if (auto it = inode->xattrs->find(kCaps); it != inode->xattrs->end()) {
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    inode->xattrs->erase(it);
    UDAX_RETURN_IF_ERROR(StageXattrs(inode));
    changed = true;
  }
  if (mode_drop != 0) {
    inode->d.mode &= ~mode_drop;
    changed = true;
  }
  drop->staged = true;
  if (!changed) return Status::Ok();
  drop->changed = true;
  TouchCtime(&inode->d);
  StageInode(inode);
  return Status::Ok();
}

Result<bool> Filesystem::KillPrivs(uint64_t ino, bool suidgid,
                                   const std::function<bool(uint32_t gid)>& exempt_from_sgid,
                                   PrivChange change) {
  PrivDrop drop{suidgid, exempt_from_sgid, change};
  {
    MetaLock lock(this);
    UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
    if (!PrivDropPending(*inode, &drop)) return false;
  }
  UDAX_ASSIGN_OR_RETURN(Inode * inode, PinForExtentChange(ino));
  ExclusiveInode held(this, inode);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, &drop));
  if (!drop.changed) return false;
  UDAX_RETURN_IF_ERROR(Commit());
  return true;
}

Result<Filesystem::NewInodeAttrs> Filesystem::InheritAttrs(Inode* dir, uint32_t mode,
                                                           const Caller& caller) {
  NewInodeAttrs out;
  out.mode = mode;
  if (S_ISLNK(mode)) return out;  // symlinks have neither ACLs nor a umask'd mode
  UDAX_RETURN_IF_ERROR(LoadXattrs(dir));
  auto def = dir->xattrs->find(std::string_view(kAclDefaultXattr));
  if (def == dir->xattrs->end()) {
    out.mode = mode & ~(caller.umask & 0777);
    return out;
  }
  // posix_acl_create: the parent's default ACL replaces the umask.
  auto parsed = AclDecode(def->second);
  if (!parsed.ok()) return Status::IoError("default ACL of inode " + std::to_string(dir->ino) +
                                           " is damaged");
  Acl acl = std::move(parsed).value();
  if (S_ISDIR(mode)) out.xattrs[kAclDefaultXattr] = def->second;
  if (AclCreateMasq(&acl, &out.mode)) out.xattrs[kAclAccessXattr] = AclEncode(acl);
  // Room for the blob and an extent block to map it, beyond what the name itself needs.
  const uint64_t aus = XattrAus(XattrBlobSize(out.xattrs));
  if (aus > 0 && !HoldAus(kNamespaceOpAus + aus + 1, 0, dir->ino)) {
    return Status::NoSpace("no space for inherited ACLs");
  }
  return out;
}

Result<Inode*> Filesystem::AllocInodeWith(const NewInodeAttrs& attrs, const Caller& caller,
                                          Inode* dir) {
  UDAX_ASSIGN_OR_RETURN(Inode * inode, AllocInode(attrs.mode, caller, dir));
  inode->xattrs = attrs.xattrs;
  if (!attrs.xattrs.empty()) UDAX_RETURN_IF_ERROR(StageXattrs(inode));
  return inode;
}

Status Filesystem::ChmodAcl(Inode* inode) {
  UDAX_RETURN_IF_ERROR(LoadXattrs(inode));
  auto it = inode->xattrs->find(std::string_view(kAclAccessXattr));
  if (it == inode->xattrs->end()) return Status::Ok();
  auto acl = AclDecode(it->second);
  if (!acl.ok()) return Status::IoError("access ACL of inode " + std::to_string(inode->ino) +
                                        " is damaged");
  AclChmod(&acl.value(), inode->d.mode);
  it->second = AclEncode(*acl);  // same size: the blob keeps its AUs
  return StageXattrs(inode);
}

}  // namespace udax
