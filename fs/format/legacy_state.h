// legacy_state.h -- moving an old image's side files (IMAGE.badblocks, IMAGE.events) into the state directory.
//
// Before the state directory (fs/format/state_dir.h), an image's poison list and event log
// lived beside it. Such files keep working: the first open of the image that prepares
// its state moves them in, once, but only when they can be trusted:
//   * the image's directory is owned by root or the image's owner and is not writable by
//     group or others (in a sticky /var/tmp anyone could have planted them);
//   * the file is opened O_NOFOLLOW|O_NONBLOCK (a symlink or FIFO is refused without
//     blocking), is a regular file owned by root or the image's owner, not writable by
//     group or others, and not larger than the cap (1 MiB list, 64 MiB log);
//   * a list must parse.
// A migrated list is merged into the state's list (under its lock) and a migrated log is
// appended to the state's log; the legacy file (and an IMAGE.badblocks.lock beside it) is
// then removed, so that a list emptied later is not brought back by a second migration.
// A file that fails a check is left where it is, unread, and named on stderr with the
// reason, on every prepare (so the administrator sees it at every mount until it is dealt
// with).
//
// Thread-safety: may be called concurrently (the list merge takes the list's lock; two
// log migrations racing may both append: the lines are whole either way).
#pragma once

#include <sys/stat.h>

#include <string>

namespace udax {

struct TargetState;

inline constexpr size_t kMaxLegacyEventLogBytes = 64u << 20;

// Migrates what can be trusted beside `image` (whose fstat is `image_st`) into `state`;
// reports every refusal on stderr. Never fails the caller: an untrusted legacy file
// simply does not count.
void MigrateLegacyState(const std::string& image, const struct stat& image_st,
                        const TargetState& state);

}  // namespace udax
