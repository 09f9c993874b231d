// killpriv_v2.h -- FUSE_HANDLE_KILLPRIV_V2 on libfuse 3.14, which does not know the flag.
//
// Why: a FUSE mount clears SB_NOSEC, so before every write(2) the kernel asks the daemon
// for security.capability (file_remove_privs), a second round trip per write: half the
// rate of 4 KiB random writes (bench/README.md, the profile). With HANDLE_KILLPRIV_V2 the
// kernel sets SB_NOSEC and leaves killing suid/sgid and capabilities to the filesystem,
// telling it when: WRITE with FUSE_WRITE_KILL_SUIDGID, SETATTR of the size with
// FATTR_KILL_SUIDGID, OPEN with O_TRUNC and FUSE_OPEN_KILL_SUIDGID (each only when the
// caller lacks CAP_FSETID); on chown it is the filesystem's own job.
//
// libfuse 3.14 neither puts the flag in its INIT reply nor passes those request flags on,
// so the daemon reads and writes /dev/fuse through fuse_session_custom_io: the INIT reply
// gets the flag when the kernel offered it, and each request's kill flag is kept for the
// thread that handles it (the multi-threaded loop handles a request on the thread that
// read it; OpInit turns splice reads off, which would bypass the read hook).
#ifndef UDAXFS_FS_FUSE_KILLPRIV_V2_H_
#define UDAXFS_FS_FUSE_KILLPRIV_V2_H_

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include <optional>

#include "fs/core/filesystem.h"

namespace udax {

// Reads and writes `se`'s device through the hooks above. Call after fuse_session_mount
// and before the loop. Returns 0, or -1 (libfuse said why).
int InstallKillprivV2(fuse_session* se);

// The same hooks carry FUSE over io_uring (uring_transport.h): with this called before the
// loop, the INIT reply asks for it when the kernel offers it (fuse.enable_uring=1) and the
// queues start once the kernel has the reply.
void RequestUringWhenOffered();

// What the read hook does with each request read from /dev/fuse, for a request that came
// another way (a ring entry): keeps its kill-suid/sgid flag for this thread.
void NoteRawRequest(const char* buf, size_t len);

// Whether the kernel took the flag (known once INIT is answered): the filesystem kills
// suid/sgid/capabilities itself.
bool KillprivV2Active();

// The request this thread is handling asked for suid/sgid to be killed (WRITE, SETATTR of
// the size, OPEN or CREATE with O_TRUNC). False for any other request.
bool RequestKillsSuidgid();

// The FUSE side of the one privilege-drop path (PrivDrop in fs/core/filesystem.h): the
// drop a change makes, for the core to stage in the change's own transaction.
// `suidgid` as the request said (RequestKillsSuidgid; true for chown, and for a range
// change by anyone but root). The caller's groups are read only when a setgid file
// without group-exec asks for them.
PrivDrop PrivDropFor(fuse_req_t req, bool suidgid, PrivChange change = PrivChange::kData);
// After a change that a local filesystem follows with file_remove_privs (write,
// truncate) or chown_common's kill (chown): the drop to make when the kernel took the
// flag and so no longer drops them itself; nullopt when it did not.
std::optional<PrivDrop> KillPrivsFor(fuse_req_t req, bool suidgid,
                                     PrivChange change = PrivChange::kData);
// After the change: if the drop changed the inode, the kernel's cached attributes are
// stale (attributes only: no page is locked, so this is safe inside any request).
void AfterPrivDrop(fuse_req_t req, fuse_ino_t ino, const PrivDrop* drop);

}  // namespace udax

#endif  // UDAXFS_FS_FUSE_KILLPRIV_V2_H_
