// uring_transport.h -- FUSE over io_uring (Linux 6.14+) under libfuse 3.14, which only
// knows /dev/fuse.
//
// Why: a FUSE request is a round trip between the caller's thread and a daemon thread.
// With /dev/fuse the daemon thread that wakes is any reader, on any CPU, and on these
// machines a wake-up across CPUs costs more than the work (bench/README.md: 4 KiB random
// reads at 18k IOPS with daemon and caller pinned to different CPUs, 75-80k on the same
// one, 41k unpinned). FUSE over io_uring gives the daemon one queue per CPU; the kernel
// puts each request on the caller's CPU queue, whose thread is pinned there, so the
// hand-over is a local wake-up both ways.
//
// How, without libfuse's support (3.17+): after INIT (which still goes through /dev/fuse;
// the custom-I/O hooks add FUSE_OVER_IO_URING to the reply when the kernel offers it and
// the mount asked, `-o uring`), one thread per possible CPU ("udaxfs-ringN"), pinned to
// it, registers
// kDepth ring entries with IORING_OP_URING_CMD on the /dev/fuse descriptor. A completed
// entry holds a request split in three (header, the opcode's struct, payload); the thread
// lays them out contiguously, as a read of /dev/fuse would have, in front of the payload
// it registered (so a WRITE's data is not copied again), and hands the buffer to
// fuse_session_process_buf. libfuse answers through the custom writev hook, which gives
// the reply to UringTakeReply: header and payload go into the entry. When the handler
// returns, the entry is queued to commit-and-fetch (exactly once: a second commit of the
// same request fails with ENOENT), submitted with the thread's next wait. FORGET and INTERRUPT still
// arrive on /dev/fuse, where the ordinary loop keeps serving them.
//
// A queue is one thread: its requests are served one after another. A handler that waits
// for a page lock (invalidating cached pages inside FALLOCATE, or a range-moving IOCTL)
// could wait for a READ queued behind it on the same CPU, so those requests run on a
// helper thread and their replies are committed by the queue thread when it is done.
// Notifications (FUSE_NOTIFY_*) from any thread still go out through /dev/fuse.
#ifndef UDAXFS_FS_FUSE_URING_TRANSPORT_H_
#define UDAXFS_FS_FUSE_URING_TRANSPORT_H_

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace udax {

// The INIT flag (include/uapi/linux/fuse.h, protocol 7.42: bit 9 of flags2).
inline constexpr uint64_t kFuseOverIoUring = 1ULL << 41;

// Whether the fuse module would offer FUSE over io_uring to a new mount
// (/sys/module/fuse/parameters/enable_uring is Y).
bool KernelMayOfferUring();

// Starts the queues (threads that register their entries, then serve). `payload_size` is
// at least the connection's max_write and max_pages * page size. Failures are logged and
// leave the mount on /dev/fuse: until every queue has registered, the kernel keeps using it.
void StartUringTransport(fuse_session* se, int fuse_fd, size_t payload_size);

// Stops and joins the queue threads (after the session loop ended). Idempotent.
void StopUringTransport();

// From the writev hook: when this thread is serving a ring request and `iov` is its
// reply, commits it to the entry and returns true with *written set to the bytes libfuse
// meant to write. False for anything else (notifications, /dev/fuse requests).
bool UringTakeReply(const struct iovec* iov, int count, ssize_t* written);

// When this thread serves a ring request: the entry's payload buffer and its size, where a
// READ reply can be built without a copy (a reply pointing into it is not copied again).
// nullptr otherwise.
char* UringReplyBuffer(size_t* size);

}  // namespace udax

#endif  // UDAXFS_FS_FUSE_URING_TRANSPORT_H_
