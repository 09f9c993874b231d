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

// After a change a local filesystem follows with file_remove_privs (write, truncate) or
// chown_common's kill (chown: `change` kOwner): when the kernel took the flag, drops what
// it no longer drops itself (DropPrivsAfterChange; `suidgid` as the request said, true
// for chown).
void KillPrivsAfterChange(fuse_req_t req, fuse_ino_t ino, bool suidgid,
                          Filesystem::PrivChange change = Filesystem::PrivChange::kData);
// The FUSE side of the one privilege-drop path (Filesystem::KillPrivs), for every change
// that must drop setuid/setgid/capabilities, whether or not the kernel took the flag
// (fallocate, copy_file_range and UDAX_IOC_FALLOCATE, which the kernel's FUSE client does
// not follow with a full file_remove_privs): drops them and, if the inode changed, the
// kernel's cached attributes (attributes only: no page is locked, so this is safe inside
// any request). Errors are logged, not returned: the change itself succeeded.
void DropPrivsAfterChange(fuse_req_t req, fuse_ino_t ino, bool suidgid,
                          Filesystem::PrivChange change = Filesystem::PrivChange::kData);

}  // namespace udax

#endif  // UDAXFS_FS_FUSE_KILLPRIV_V2_H_
