// view_warmer.h -- makes chunks of file-backed views present in the map, in the
// background (issue 21; read_view.h says why, and what serves a chunk meanwhile).
//
// One thread per process at a time, started when there is a chunk to warm and gone when
// there is none, at the lowest priority (SCHED_IDLE): the program's own threads come
// first, and on a busy machine the chunks stay served by the kernel's copy. It makes a
// chunk present (MADV_POPULATE_READ, or _WRITE for a writable view) and marks it warm.
// A chunk it cannot make present (poison, a revoke that replaced the map) stays cold.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace udax_client {

struct ReadView;

// Counts `len` more bytes of chunk k served by the descriptor, and queues the chunk for
// warming when that makes more than one pass over it. The warmer holds the view only
// while it makes one chunk present, so a view given back meanwhile is not kept alive.
void NoteColdBytes(ReadView& view, size_t k, uint64_t len);

// fork(): the child has no warmer thread, and the queue's views are the parent's.
void WarmerAfterForkChild();

}  // namespace udax_client
