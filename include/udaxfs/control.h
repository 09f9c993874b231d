/* control.h -- the udaxfs control socket: where it is and what it speaks.
 *
 * Every mounted udaxfs daemon listens on a UNIX SOCK_SEQPACKET socket at
 *   /run/udaxfs/MAJOR:MINOR.sock
 * where MAJOR:MINOR is the mount's device number (stat(2) of any file on the mount:
 * st_dev), so a client finds it from a file descriptor alone. Every packet is one JSON
 * object. Requests carry "op"; every reply carries "ok" (and "error" when false).
 *   {"op": "hello"}      -> {"ok": true, "version": 1, "target": ..., "au_size": ...,
 *                            "region_size": ..., "mce_policy": ...}
 *   {"op": "subscribe"}  -> {"ok": true}, then one {"event": {...}} packet per media event,
 *                           the same object as a line of the event log (udaxctl events)
 *   {"op": "verify", "rate": B} -> {"ok": true, "pass": N}: root asks the media patrol for
 *                           a pass at B bytes/s (0 or absent: the mount's patrol_rate);
 *                           N is the pass that answers it
 *   {"op": "status"}     -> {"ok": true, "patrol": {"running", "pass", "progress", "last":
 *                           {"id", "found": [{offset, length}], ...}, ...},
 *                           "journal": {"commits", "replayed_at_mount", ...}} (root);
 *                           several devices add "devices": [{"device", "path", "lost",
 *                           "removing"}] ("removing": a remove-device not yet acted on)
 *                           and, when a replaced device took file data, "lost_data":
 *                           {"files", "bytes"}
 *   {"op": "map", "offset": O, "length": L, "prot": "r"|"rw"} + the file's descriptor
 *                        -> {"ok": true, "lease": ID, "extents": [{file_offset, phys,
 *                           length}], "region_kind", "map_align"} and the region's
 *                           descriptor and the lease socket: a direct map (libudax's
 *                           udax_map). With "devices": "many" the file may lie on several
 *                           devices of one filesystem: the reply adds "devices": N (the
 *                           devices the range lies on, at most 16) and every extent a
 *                           "descriptor": K in 0..N-1, its "phys" relative to that device.
 *                           The reply's descriptors are the first device's (K = 0), the
 *                           lease socket, then those of K = 1..N-1 in order. K is a place
 *                           in this reply's list, not the filesystem's device number.
 *                           Without it such a file is refused (EXDEV). E2BIG when the
 *                           range's extents do not fit one reply: map less of it.
 *   {"op": "view"} + the file's descriptor (SCM_RIGHTS) -> {"ok": true, "lease": ID,
 *                           "size": S, "extents": [{file_offset, phys, length}],
 *                           "bad": [{offset, length}], "region_kind", "map_align"} and the
 *                           region's descriptor and the lease socket: a read-only lease of
 *                           the whole file for the preload shim's read(2) (holes are not in
 *                           "extents" and read as zeros; "bad" ranges fail with EIO). It is
 *                           revoked by any allocation or size change as well, and told
 *                           {"bad": {offset, length}} for new bad media.
 *   {"op": "view", "prot": "rw"} + a descriptor open O_RDWR -> the same reply, for a
 *                           writable view: its extents are mapped read-write and the preload
 *                           shim stores overwrites into them (write(2) without FUSE). It
 *                           needs write permission on the region, and is refused for a
 *                           set-user/group-ID, immutable or append-only file. Its revoke is
 *                           waited for ({"ack": ID}, as a map's): stores must stop first.
 *   With "extents": "compact" in a view request the reply has "extent_table":
 *                           [[file_offset, phys, length], ...] instead of "extents": half the
 *                           bytes, so three times the extents fit the one reply packet (1536,
 *                           against 512).
 *   A view reply also carries "gen" and two more descriptors:
 *   - the view page, a memfd the holder maps read-only (sealed: nobody else can write it).
 *     At UDAX_VIEW_GEN_OFFSET, a generation that moves before anything the view shows
 *     changes (blocks freed or moved, an allocation, the size): a copy is good only if the
 *     word still holds the reply's "gen" after it. Revokes of read views are not waited for;
 *   - the write page, a memfd every holder maps (read-only for a read view, read-write for
 *     a writable one; mode 0600, so only what the daemon hands out reaches it). Its words
 *     bracket in-place stores into the file, by the daemon and by writable views alike:
 *     a writer adds 1 to UDAX_WRITE_PAGE_BEGIN_OFFSET before it stores and 1 to
 *     UDAX_WRITE_PAGE_END_OFFSET after; a copy is good only if the two were equal before
 *     it and BEGIN did not move across it (a seqlock several writers may share). A writable
 *     view adds 1 to UDAX_WRITE_PAGE_WRITES_OFFSET per write: the daemon stamps the file's
 *     mtime and ctime when it sees the count move (stat, fsync, the view's end).
 *   {"op": "view", "prot": "rw", "reserve": BYTES} -> a writable view that may also write
 *                           past the end: the daemon allocates (zeroed) space past EOF,
 *                           about BYTES of it (at most 1 GiB and a sixteenth of the free
 *                           space), unless live writable views already have room there,
 *                           and the reply's "limit" (>= "size") says how far
 *                           the view's extents reach. A store that ends past the size
 *                           raises UDAX_WRITE_PAGE_SIZE_OFFSET to its end (an atomic
 *                           maximum, inside the store's bracket); the daemon takes that word,
 *                           never past the limit it granted, as the file's size at stat,
 *                           fsync, the view's end and before any change of the file
 *                           (no request per write). Every view reads min(word, "limit")
 *                           as the size when it is larger than "size"; a read view past its
 *                           "size" reads through FUSE. The holes reservations filled are
 *                           freed past EOF when the last writable view ends. Without
 *                           room (ENOSPC) the reply's "limit" is the size. With "at":
 *                           OFFSET past EOF, the space starts at the AU holding OFFSET
 *                           (the gap before it stays a hole, read as zeros).
 *   {"op": "view", "prot": "rw", "fill": [OFFSET, LENGTH]} -> a writable view whose
 *                           holes under file bytes [OFFSET, OFFSET+LENGTH), clipped to the
 *                           size, are allocated zeroed first (the file's other views are
 *                           revoked): the preload shim's writes into holes. At most a
 *                           sixteenth of the free space, and 1 GiB a file until the last
 *                           writable view ends; asked for more, the view comes without.
 *                           The size and times do not move. When the last writable view
 *                           ends, what fills (and reservations with "at") allocated below
 *                           the size and reads all zeros is punched again.
 * The daemon learns who is asking from SO_PEERCRED: subscribing needs root or read
 * permission on the target (the image or device), as opening it would. */
#ifndef UDAXFS_CONTROL_H_
#define UDAXFS_CONTROL_H_

#define UDAX_CONTROL_DIR "/run/udaxfs"
#define UDAX_CONTROL_VERSION 1
#define UDAX_CONTROL_MAX_PACKET 65536
#define UDAX_VIEW_PAGE_SIZE 4096
#define UDAX_VIEW_GEN_OFFSET 64 /* its own cache line */
#define UDAX_WRITE_PAGE_BEGIN_OFFSET 0
#define UDAX_WRITE_PAGE_END_OFFSET 8
#define UDAX_WRITE_PAGE_WRITES_OFFSET 64 /* its own cache line */
#define UDAX_WRITE_PAGE_SIZE_OFFSET 128  /* its own cache line */

#endif /* UDAXFS_CONTROL_H_ */
