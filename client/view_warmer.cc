// view_warmer.cc -- the background warmer of file-backed views (view_warmer.h).
#include "client/view_warmer.h"

#include <errno.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "client/read_view.h"

namespace udax_client {
namespace {

// The most of one view made present: address space and page tables are not free, and a
// larger file's chunks beyond this are read by the kernel's copy.
constexpr uint64_t kWarmLimit = uint64_t{1} << 30;
// One madvise at a time holds the process's mmap lock for reading; a smaller step lets a
// waiting writer of it (mmap, munmap) in sooner behind a thread that runs last.
constexpr uint64_t kStep = uint64_t{256} << 10;

struct Warmer {
  std::mutex mu;
  std::deque<std::pair<std::weak_ptr<ReadView>, size_t>> queue;  // GUARDED_BY(mu)
  bool running = false;  // GUARDED_BY(mu): a thread drains the queue
};

// Never destroyed: its thread may outlive main. A child of fork gets a new one.
std::atomic<Warmer*> warmer{new Warmer()};
Warmer& W() { return *warmer.load(std::memory_order_acquire); }

uint64_t ChunkStart(size_t k) { return uint64_t{k} << ReadView::kChunkShift; }
uint64_t ChunkLength(const ReadView& v, size_t k) {
  return std::min<uint64_t>(uint64_t{1} << ReadView::kChunkShift, v.mapped - ChunkStart(k));
}

// Makes chunk k of the view present: whether all of it is.
bool Populate(ReadView& v, size_t k) {
#ifdef MADV_POPULATE_READ
  const int advice = v.writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
  const uint64_t start = ChunkStart(k), end = start + ChunkLength(v, k);
  for (uint64_t a = start; a < end; a += kStep) {
    if (!ViewUsable(v)) return false;
    const size_t len = std::min(kStep, end - a);
    // A hole in a writable view is a read-only zero page: present for reading is enough
    // (a store into a hole is FUSE's), and an extent there takes a write fault later.
    if (madvise(v.base + a, len, advice) != 0 &&
        (advice == MADV_POPULATE_READ || errno != EINVAL || madvise(v.base + a, len, MADV_POPULATE_READ) != 0)) {
      return false;
    }
  }
  return true;
#else
  (void)v;
  (void)k;
  return false;  // before Linux 5.14's headers: the kernel's copy serves every chunk
#endif
}

void Drain() {
  // SCHED_IDLE: runs only on a CPU nothing else wants (any thread may set it for itself).
  sched_param param{};
  (void)sched_setscheduler(0, SCHED_IDLE, &param);
  Warmer& w = W();
  for (;;) {
    std::shared_ptr<ReadView> v;
    size_t k = 0;
    {
      std::lock_guard<std::mutex> lock(w.mu);
      if (w.queue.empty()) {
        w.running = false;
        return;
      }
      v = w.queue.front().first.lock();  // a view given back is dropped
      k = w.queue.front().second;
      w.queue.pop_front();
    }
    if (!v || !ViewUsable(*v) || !Populate(*v, k)) continue;
    v->chunks[k].warm.store(true, std::memory_order_release);
    if (v->warm_count.fetch_add(1) + 1 == v->chunk_count) v->all_warm.store(true, std::memory_order_release);
  }  // `v` is let go here, outside w.mu: its destructor may run
}

// Queues chunk k of the view for Drain.
void Queue(ReadView& view, size_t k) {
  Warmer& w = W();
  std::lock_guard<std::mutex> lock(w.mu);
  w.queue.emplace_back(view.weak_from_this(), k);
  if (w.running) return;
  w.running = true;
  try {
    std::thread(Drain).detach();
  } catch (const std::system_error&) {
    w.running = false;  // no thread: the kernel's copy serves the chunks
    w.queue.clear();
  }
}

}  // namespace

void NoteColdBytes(ReadView& view, size_t k, uint64_t len) {
  if (k >= view.chunk_count || ChunkStart(k) >= kWarmLimit) return;
  const uint64_t pass = ChunkLength(view, k);
  std::atomic<uint32_t>& cold = view.chunks[k].cold_bytes;
  if (cold.load(std::memory_order_relaxed) > pass) return;  // queued once: counted no more
  const auto add = static_cast<uint32_t>(std::min<uint64_t>(len, pass + 1));
  const uint32_t before = cold.fetch_add(add, std::memory_order_relaxed);
  if (before > pass || before + add <= pass) return;  // one call alone takes it past a pass
  Queue(view, k);
}

void WarmerAfterForkChild() {
  // The parent's lock may have been held at the fork: a new warmer, the old one leaked.
  warmer.store(new Warmer(), std::memory_order_release);
}

}  // namespace udax_client
