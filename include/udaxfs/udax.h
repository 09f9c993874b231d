/* udax.h -- libudax: direct maps of udaxfs files (true DAX from a FUSE filesystem).
 *
 * udax_map asks the daemon of the file's mount, over its control socket
 * (udaxfs/control.h), for the file's extents and the region's descriptor, and maps the
 * extents contiguously into this process: loads and stores then go straight to the
 * (persistent) memory, with no FUSE request and no page-cache copy. The map is a lease
 * the daemon can take back: before it frees or moves the blocks (truncate, punch hole,
 * collapse/insert range, relocation of a bad block, unlink of the last name, shutdown,
 * unmount) the library's listener thread replaces the range with memory that raises
 * SIGBUS when touched (as a removed devdax does) and acknowledges; a process that does not
 * acknowledge within the daemon's deadline (100 ms) is killed first.
 *
 * Memory errors: with the mount's mce_policy=notify, a bad range under a direct map is
 * reported by a SIGBUS this process raises to itself, with si_code BUS_MCEERR_AO and
 * si_addr inside the mapping (the kernel's "action optional" form); with kill the daemon
 * kills the process.
 *
 * Who may: the caller must be allowed to open the raw region (root, or the image's mode
 * bits) and hold the file open in the mode asked (O_RDWR for a writable map). Otherwise
 * udax_map fails with -EACCES: fall back to mmap(2).
 *
 * Children do not inherit direct maps (MADV_DONTFORK): only this process holds the lease.
 * Thread-safety: every function may be called from any thread. */
#ifndef UDAXFS_UDAX_H_
#define UDAXFS_UDAX_H_

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UDAX_PROT_READ 1
#define UDAX_PROT_WRITE 2

/* Maps `length` bytes of the open udaxfs file `fd` from `offset` (a multiple of the page
 * size, or of 2 MiB on devdax) with `prot` (UDAX_PROT_READ, optionally | UDAX_PROT_WRITE).
 * On devdax the map covers the whole allocation units under the range (the device maps
 * only whole units of its alignment); bytes past `length` in them are this file's.
 * The range must lie inside the file (extend it first); holes are allocated. On success
 * stores the address in *addr and returns 0; otherwise returns -errno (EXDEV: not a
 * udaxfs file; EACCES: not allowed; EINVAL: bad range; ENOTCONN: no daemon). */
int udax_map(int fd, off_t offset, size_t length, int prot, void** addr);
/* Gives the map back (the whole map that udax_map returned at `addr`). -EINVAL if `addr`
 * is not one. */
int udax_unmap(void* addr);
/* Makes [addr, addr+len) of a direct map durable: cache flush on real pmem, msync on an
 * emulated region. */
int udax_persist(const void* addr, size_t len);
/* Whether [addr, addr+len) still belongs to a live (not revoked) direct map. */
int udax_is_mapped(const void* addr, size_t len);

/* Called from the listener thread for every memory-error notice of one of our maps:
 * the bad range's address and length. */
typedef void (*udax_event_fn)(void* addr, size_t len, void* arg);
void udax_set_event_callback(udax_event_fn fn, void* arg);

/* A subscription to every media event of a mount (the daemon's event log, live): `fn`
 * gets each event as a JSON object (the same fields as `udaxctl events --json`) on the
 * subscription's own thread. `path` is any file or directory on the mount. Needs read
 * permission on the region. Returns 0 and *out, or -errno. */
typedef struct udax_subscription udax_subscription;
typedef void (*udax_subscriber_fn)(const char* json, void* arg);
int udax_subscribe(const char* path, udax_subscriber_fn fn, void* arg, udax_subscription** out);
/* Stops the thread (no call of `fn` after this returns) and frees the subscription. */
void udax_unsubscribe(udax_subscription* sub);

#ifdef __cplusplus
}
#endif

#endif /* UDAXFS_UDAX_H_ */
