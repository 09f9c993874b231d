/* ioctl.h -- the udaxfs ioctl ABI: forward (bmap) and reverse (rmap) map queries on a
 * mounted udaxfs. FUSE passes only "restricted" ioctls, whose argument is one fixed-size
 * struct, so each query returns a page of results and a total; ask again with a larger
 * `start` for the next page. Issue BMAP on the file, RMAP on any directory of the mount. */
#ifndef UDAXFS_IOCTL_H_
#define UDAXFS_IOCTL_H_

#include <linux/ioctl.h>
#include <linux/types.h>
#include <stdint.h>

#define UDAX_IOC_MAGIC 'U'

#define UDAX_BMAP_MAX 400
struct udax_bmap_extent {
  uint64_t file_offset; /* bytes */
  uint64_t phys_offset; /* bytes from the start of the region */
  uint64_t length;      /* bytes */
};
struct udax_ioc_bmap {
  uint64_t start; /* in: first extent to return */
  uint32_t count; /* out: extents returned */
  uint32_t total; /* out: extents the file has */
  uint64_t au_size;
  struct udax_bmap_extent ext[UDAX_BMAP_MAX];
};

#define UDAX_RMAP_MAX 300
struct udax_rmap_owner {
  uint64_t phys;   /* bytes from the start of the region */
  uint64_t length; /* bytes */
  uint64_t offset; /* the owner's byte offset (file offset for data) */
  uint64_t ino;
  uint32_t generation;
  uint8_t kind; /* enum OwnerKind in fs/format/disk_format.h */
  uint8_t pad[3];
};
struct udax_ioc_rmap {
  uint64_t phys;   /* in: region byte offset */
  uint64_t length; /* in: bytes */
  uint64_t start;  /* in: first owner range to return */
  uint32_t count;  /* out */
  uint32_t total;  /* out */
  struct udax_rmap_owner owner[UDAX_RMAP_MAX];
};

/* A path (from the mount's root) of an inode the reverse map named. */
struct udax_ioc_path {
  uint64_t ino;    /* in */
  char path[4096]; /* out: NUL-terminated */
};

/* Checksum scrub of every metadata record in use. */
#define UDAX_SCRUB_MESSAGES 16
struct udax_ioc_scrub {
  uint64_t inodes;        /* out: inodes in use */
  uint64_t allocated_aus; /* out */
  uint64_t problems;      /* out: checksum failures */
  char messages[UDAX_SCRUB_MESSAGES][200]; /* out: the first ones */
};

#define UDAX_IOC_BMAP _IOWR(UDAX_IOC_MAGIC, 1, struct udax_ioc_bmap)
#define UDAX_IOC_RMAP _IOWR(UDAX_IOC_MAGIC, 2, struct udax_ioc_rmap)
#define UDAX_IOC_PATH _IOWR(UDAX_IOC_MAGIC, 3, struct udax_ioc_path)
#define UDAX_IOC_SCRUB _IOR(UDAX_IOC_MAGIC, 4, struct udax_ioc_scrub)

/* fallocate(2) with every mode udaxfs implements, COLLAPSE_RANGE and INSERT_RANGE
 * included: the kernel's FUSE client refuses those two before they reach the daemon.
 * Issued on a file descriptor open for writing; errors as fallocate(2) returns them. */
struct udax_ioc_fallocate {
  uint32_t mode;     /* FALLOC_FL_* */
  uint32_t reserved; /* 0 */
  uint64_t offset;
  uint64_t length;
};
#define UDAX_IOC_FALLOCATE _IOW(UDAX_IOC_MAGIC, 5, struct udax_ioc_fallocate)

/* XFS_IOC_GOINGDOWN, as xfstests' godown and xfs_io's shutdown issue it (on a directory
 * or a file of the mount; root only). FUSE passes no argument for an _IOR command, so the
 * XFS flag (flush or not) is not seen: udaxfs has nothing unflushed to choose about. */
#define UDAX_IOC_GOINGDOWN _IOR('X', 125, __u32)

/* A daemon started read-only (mount -o ro) becomes read-write: mount.udaxfs issues it
 * before the kernel remount of `mount -o remount,rw`. Root only; on any file or directory
 * of the mount. EROFS: the target could only be opened read-only; EBUSY: the journal holds
 * a transaction the read-only mount did not apply (unmount and mount read-write). */
#define UDAX_IOC_MAKE_WRITABLE _IO(UDAX_IOC_MAGIC, 6)

/* The devices of the filesystem, in the order of its linear space: a physical offset P
 * (bmap's phys_offset, rmap's phys) lies on the device whose [start, start+length) holds
 * it, at device offset P - start. One device, starting at 0, on a single-region
 * filesystem. On any file or directory of the mount. */
#define UDAX_DEVICES_MAX 16
struct udax_device_info {
  uint64_t start;  /* bytes: where the device begins in the filesystem's linear space */
  uint64_t length; /* bytes of it the filesystem uses */
  uint8_t uuid[16]; /* the device's own UUID (the filesystem's, on a single region) */
  char path[256];  /* the target it was opened as, NUL-terminated (cut if longer) */
};
struct udax_ioc_devices {
  uint32_t count; /* out */
  uint32_t pad;
  struct udax_device_info dev[UDAX_DEVICES_MAX];
};
#define UDAX_IOC_DEVICES _IOR(UDAX_IOC_MAGIC, 7, struct udax_ioc_devices)

#endif /* UDAXFS_IOCTL_H_ */
