// upgrade.h -- turning metadata copies on in an image made without them, offline and in
// place (issue 17: an image in the old format keeps mounting, and this is the explicit
// command that upgrades it: `udaxctl upgrade TARGET`).
//
// Copies need room the old layout gives to data: the second inode table at the far end
// of the region (the "fence", just before the replica's AU), and for every directory,
// extent-block, xattr and symlink AU its partner AU (CopyAu under the new geometry)
// free. So the upgrade, on a filesystem that checks clean:
//   1. moves, under the old geometry, one journal transaction a move, what stands in the
//      way: file data out of the fence; a metadata AU that lies in the fence, has no
//      partner, or whose partner holds anything else, to a free pair (when no pair is
//      free, the partner's data moves instead); of two metadata AUs that are each
//      other's partners, the upper one. Moves can add extent blocks (a split extent), so
//      this repeats until nothing stands in the way. Every AU the end state needs free
//      is reserved in DRAM meanwhile, so no move lands on one;
//   2. allocates the fence and the partners, with the reverse-map records the new
//      geometry wants (copy 2), still under the old geometry, and retires the journal;
//   3. copies the inode table into the fence and every metadata AU into its partner,
//      raw (no checksum depends on where a block lives), and persists them;
//   4. writes the primary superblock with the feature and the second table (the commit
//      point), then the replica.
// A cut before step 4 leaves a valid image without copies whose extra allocations are
// leaks (fsck.udaxfs --repair frees them; then the upgrade runs again); a cut in step 4
// leaves a valid image with copies whose replica is mended by the next upgrade run (it
// says the image already has copies) or fsck.
//
// Thread-safety: runs alone on an unmounted target (the region's exclusive lock).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fs/base/status.h"
#include "fs/region/region.h"

namespace udax {

struct UpgradeReport {
  bool already = false;         // the image had copies already (the replica mended if stale)
  uint64_t rounds = 0;          // passes of step 1
  uint64_t moved_data_aus = 0;  // file data moved out of the way
  uint64_t moved_meta_aus = 0;  // metadata AUs moved to a free pair
  uint64_t metadata_aus = 0;    // metadata AUs that now have a second copy
  uint64_t itable2_aus = 0;     // the second inode table's size, in AUs
  uint64_t au_size = 0;
  uint64_t free_aus_before = 0, free_aus_after = 0;
};

class Upgrader {
 public:
  // Upgrades the unmounted filesystem on `target`. Errors: EBUSY it is mounted (or in use
  // by another tool); EUCLEAN it does not check clean (fsck.udaxfs --repair first; the
  // message says what is wrong); ENOSPC the free space cannot hold the copies; EINVAL the
  // region is too small for a second inode table; EIO a block that must move does not
  // read. The image is left valid in every case, without copies unless the call succeeded
  // (the moves made before an error stay: same files, other places).
  static Result<UpgradeReport> Run(const std::string& target);
  // The same on a region the caller opened (tests).
  static Result<UpgradeReport> RunOnRegion(std::unique_ptr<Region> region);
};

}  // namespace udax
