// uring_transport.cc -- see uring_transport.h.
#include "fs/fuse/uring_transport.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fs/fuse/killpriv_v2.h"

namespace udax {
namespace {

// --- the kernel's ABI (include/uapi/linux/fuse.h 7.42; bookworm's headers are 7.38) ---
struct RingEntInOut {
  uint64_t flags;
  uint64_t commit_id;   // the id a reply to this entry's request commits with
  uint32_t payload_sz;  // bytes of payload in the request, then in the reply
  uint32_t padding;
  uint64_t reserved;
};
struct RingReqHeader {
  char in_out[128];  // fuse_in_header of the request, fuse_out_header of the reply
  char op_in[128];   // the opcode's own struct (fuse_write_in, ...), if it has one
  RingEntInOut ent;
};
struct RingCmdReq {  // in the SQE's command area
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
constexpr uint32_t kCmdRegister = 1;
constexpr uint32_t kCmdCommitAndFetch = 2;

constexpr unsigned kDepth = 8;        // entries per queue, as libfuse's default
constexpr size_t kPrefix = 4096;      // room in front of the payload for header + op struct
constexpr uint64_t kTagStop = 1;      // user_data of the stop eventfd's poll
constexpr uint64_t kTagDone = 2;      // user_data of the offload-done eventfd's poll

struct Queue;

struct Entry {
  Queue* queue = nullptr;
  RingReqHeader* header = nullptr;  // page-aligned (the kernel pins it)
  char* buf = nullptr;              // kPrefix + payload; the payload registered at buf + kPrefix
  iovec iov[2]{};
  uint64_t commit_id = 0;
  uint64_t unique = 0;
  bool committed = false;
  bool offloaded = false;
  bool dead = false;  // the kernel ended it (connection gone)
};

struct Queue {
  unsigned qid = 0;
  io_uring ring{};
  bool ring_ok = false;
  int stop_fd = -1;
  int done_fd = -1;
  std::vector<Entry> entries;
  std::mutex done_mu;
  std::vector<Entry*> done;  // offloaded entries whose reply is written, to commit
  std::thread thread;
};

struct Transport {
  fuse_session* se = nullptr;
  int fuse_fd = -1;
  size_t payload_size = 0;
  std::vector<std::unique_ptr<Queue>> queues;
  std::atomic<bool> active{false};
  std::atomic<int> offloads{0};
};

std::mutex g_mu;
std::unique_ptr<Transport> g_transport;  // GUARDED_BY(g_mu) for start and stop
Transport* g_live = nullptr;             // read by the queue threads while they run
thread_local Entry* t_serving = nullptr;

void LogOnce(std::atomic<bool>* said, const char* what, int err) {
  if (!said->exchange(true)) syslog(LOG_WARNING, "FUSE over io_uring: %s: %s", what, strerror(err));
}

// A free SQE of the queue's ring, submitting what is queued if there is none; nullptr
// cannot happen (the ring holds one SQE per entry, plus the two polls).
io_uring_sqe* GetSqe(Queue* q) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q->ring);
  if (sqe == nullptr) {
    io_uring_submit(&q->ring);
    sqe = io_uring_get_sqe(&q->ring);
  }
  return sqe;
}

// Queues one command SQE for `e` (submitted with the thread's next wait).
bool PrepCmd(Queue* q, Entry* e, uint32_t cmd_op) {
  io_uring_sqe* sqe = GetSqe(q);
  if (sqe == nullptr) return false;
  std::memset(sqe, 0, 2 * sizeof(*sqe));  // an SQE128 slot
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = g_live->fuse_fd;
  sqe->cmd_op = cmd_op;
  sqe->user_data = reinterpret_cast<uint64_t>(e);
  if (cmd_op == kCmdRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  RingCmdReq req{};
  req.commit_id = cmd_op == kCmdCommitAndFetch ? e->commit_id : 0;
  req.qid = static_cast<uint16_t>(q->qid);
  std::memcpy(sqe->cmd, &req, sizeof(req));
  return true;
}

void ArmPoll(Queue* q, int fd, uint64_t tag) {
  io_uring_sqe* sqe = GetSqe(q);
  if (sqe == nullptr) return;
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  sqe->user_data = tag;
}

// Writes a reply into the entry: the out header, and `iov` (the reply's arguments) as its
// payload. A part that already lies where it belongs (a READ built in place) is not copied.
void WriteReply(Entry* e, int32_t error, const iovec* iov, int count) {
  char* payload = e->buf + kPrefix;
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (total > g_live->payload_size) {
    error = -EIO;
    total = 0;
  } else {
    size_t pos = 0;
    for (int i = 0; i < count; ++i) {
      if (iov[i].iov_base != payload + pos) std::memmove(payload + pos, iov[i].iov_base, iov[i].iov_len);
      pos += iov[i].iov_len;
    }
  }
  fuse_out_header out{};
  out.len = static_cast<uint32_t>(sizeof(out) + total);
  out.error = error;
  out.unique = e->unique;
  std::memcpy(e->header->in_out, &out, sizeof(out));
  e->header->ent.payload_sz = static_cast<uint32_t>(total);
  e->committed = true;
}

// Queues the commit of `e`'s reply and the fetch of its next request (queue thread only).
void QueueCommit(Queue* q, Entry* e) {
  if (!PrepCmd(q, e, kCmdCommitAndFetch)) syslog(LOG_ERR, "FUSE over io_uring: no SQE for a reply");
}

// The reply is in the entry: commit it and fetch the next request (queue thread), or hand
// it to the queue thread (helper thread of an offloaded request).
void FinishReply(Entry* e) {
  Queue* q = e->queue;
  if (!e->offloaded) return QueueCommit(q, e);
  {
    std::lock_guard<std::mutex> lock(q->done_mu);
    q->done.push_back(e);
  }
  (void)eventfd_write(q->done_fd, 1);
}

// Hands the contiguous request at [start, start + len) to libfuse on this thread.
void Dispatch(Entry* e, char* start, size_t len) {
  static std::atomic<bool> said{false};
  t_serving = e;
  e->committed = false;
  NoteRawRequest(start, len);  // KILLPRIV_V2's per-request flag, as the /dev/fuse read hook does
  fuse_buf b{};
  b.size = len;
  b.mem = start;
  fuse_session_process_buf(g_live->se, &b);
  t_serving = nullptr;
  if (!e->committed) {
    // Every request that reaches a ring entry wants a reply (FORGET and INTERRUPT come
    // through /dev/fuse); without one the entry would never fetch again.
    LogOnce(&said, "a request ended without a reply", EPROTO);
    WriteReply(e, -EIO, nullptr, 0);
  }
  FinishReply(e);
}

// Requests that may wait on something served behind them on this very queue, or on a
// client: served on a thread of their own, so the queue's CPU keeps serving the rest.
//  - FALLOCATE and IOCTL may invalidate cached pages before replying (punch, collapse,
//    insert range) and wait for a page lock whose READ is queued behind them here;
//  - a truncate (SETATTR of the size), FALLOCATE and COPY_FILE_RANGE may take a direct
//    map back first, waiting up to the lease deadline for its client and then for the
//    client's death (filesystem.h, set_revoke_hook): a probe's create on the same CPU
//    waited that long behind a truncate (tests/fs/tests/073 under ASan).
bool MayWait(uint32_t opcode, const char* op_in, size_t op_len) {
  if (opcode == FUSE_FALLOCATE || opcode == FUSE_IOCTL || opcode == FUSE_COPY_FILE_RANGE) {
    return true;
  }
  if (opcode != FUSE_SETATTR || op_len < sizeof(fuse_setattr_in)) return false;
  fuse_setattr_in a;
  std::memcpy(&a, op_in, sizeof(a));
  return (a.valid & FATTR_SIZE) != 0;
}

void Serve(Entry* e) {
  static std::atomic<bool> said{false};
  // A plain load first: the exchange (a locked instruction) happens once, not per request.
  if (!g_live->active.load(std::memory_order_relaxed) && !g_live->active.exchange(true)) {
    syslog(LOG_INFO, "FUSE over io_uring: requests arrive on %zu per-CPU queues", g_live->queues.size());
  }
  RingReqHeader* h = e->header;
  fuse_in_header in;
  std::memcpy(&in, h->in_out, sizeof(in));
  const uint32_t payload = h->ent.payload_sz;
  e->commit_id = h->ent.commit_id;
  e->unique = in.unique;
  e->offloaded = false;
  if (in.len < sizeof(in) + payload || in.len - sizeof(in) - payload > sizeof(h->op_in) ||
      payload > g_live->payload_size) {
    LogOnce(&said, "a request with inconsistent lengths", EPROTO);
    WriteReply(e, -EIO, nullptr, 0);
    FinishReply(e);
    return;
  }
  const size_t op = in.len - sizeof(in) - payload;
  char* start = e->buf + kPrefix - sizeof(in) - op;
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), h->op_in, op);
  if (MayWait(in.opcode, h->op_in, op)) {
    e->offloaded = true;
    g_live->offloads++;
    std::thread([e, start, len = in.len] {
      Dispatch(e, start, len);
      g_live->offloads--;
    }).detach();
    return;
  }
  Dispatch(e, start, in.len);
}

void CommitDone(Queue* q) {
  eventfd_t ignored;
  (void)eventfd_read(q->done_fd, &ignored);
  std::vector<Entry*> done;
  {
    std::lock_guard<std::mutex> lock(q->done_mu);
    done.swap(q->done);
  }
  for (Entry* e : done) QueueCommit(q, e);
}

void RunQueue(Queue* q) {
  static std::atomic<bool> said_setup{false}, said_cmd{false};
  char name[16];
  snprintf(name, sizeof(name), "udaxfs-ring%u", q->qid % 10000);  // tests and ps find them
  pthread_setname_np(pthread_self(), name);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(q->qid, &cpus);
  (void)sched_setaffinity(0, sizeof(cpus), &cpus);  // an offline CPU: served from elsewhere

  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
  params.cq_entries = 2 * (kDepth + 2);
  const int rc = io_uring_queue_init_params(kDepth + 2, &q->ring, &params);
  if (rc < 0) {
    LogOnce(&said_setup, "io_uring_queue_init", -rc);
    return;
  }
  q->ring_ok = true;
  for (Entry& e : q->entries) {
    if (!PrepCmd(q, &e, kCmdRegister)) return;
  }
  ArmPoll(q, q->stop_fd, kTagStop);
  ArmPoll(q, q->done_fd, kTagDone);

  size_t live = q->entries.size();
  bool stop = false;
  while (!stop && live > 0) {
    const int r = io_uring_submit_and_wait(&q->ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      LogOnce(&said_setup, "io_uring_submit_and_wait", -r);
      break;
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&q->ring, head, cqe) {
      ++seen;
      if (cqe->user_data == kTagStop) {
        stop = true;
        continue;
      }
      if (cqe->user_data == kTagDone) {
        CommitDone(q);
        ArmPoll(q, q->done_fd, kTagDone);
        continue;
      }
      auto* e = reinterpret_cast<Entry*>(cqe->user_data);
      if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
        PrepCmd(q, e, e->commit_id == 0 ? kCmdRegister : kCmdCommitAndFetch);
      } else if (cqe->res < 0) {
        // ENOTCONN, ECANCELED: the connection or the ring went away (unmount, abort).
        // Anything else (EOPNOTSUPP: the kernel did not take the flag) is worth a line.
        if (cqe->res != -ENOTCONN && cqe->res != -ECANCELED) LogOnce(&said_cmd, "ring entry", -cqe->res);
        if (!e->dead) {
          e->dead = true;
          --live;
        }
      } else {
        Serve(e);
      }
    }
    io_uring_cq_advance(&q->ring, seen);
  }
}

}  // namespace

bool KernelMayOfferUring() {
  FILE* f = fopen("/sys/module/fuse/parameters/enable_uring", "re");
  if (f == nullptr) return false;
  const int c = fgetc(f);
  fclose(f);
  return c == 'Y' || c == '1';
}

void StartUringTransport(fuse_session* se, int fuse_fd, size_t payload_size) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_transport) return;
  auto t = std::make_unique<Transport>();
  t->se = se;
  // Our own descriptor: with clone_fd the one INIT came on belongs to a loop worker,
  // which closes it when the loop retires that worker; a ring command on a closed (or
  // reused) number would fail or reach another file.
  t->fuse_fd = fcntl(fuse_fd, F_DUPFD_CLOEXEC, 0);
  if (t->fuse_fd < 0) {
    syslog(LOG_WARNING, "FUSE over io_uring: dup of /dev/fuse: %s; staying on /dev/fuse", strerror(errno));
    g_transport = std::move(t);
    return;
  }
  t->payload_size = (payload_size + 4095) & ~size_t{4095};
  const int ncpu = std::max(1, get_nprocs_conf());  // the kernel has a queue per possible CPU
  for (int c = 0; c < ncpu; ++c) {
    auto q = std::make_unique<Queue>();
    q->qid = static_cast<unsigned>(c);
    q->stop_fd = eventfd(0, EFD_CLOEXEC);
    q->done_fd = eventfd(0, EFD_CLOEXEC);
    q->entries.resize(kDepth);
    for (Entry& e : q->entries) {
      e.queue = q.get();
      e.header = static_cast<RingReqHeader*>(std::aligned_alloc(4096, 4096));
      e.buf = static_cast<char*>(std::aligned_alloc(4096, kPrefix + t->payload_size));
      if (e.header == nullptr || e.buf == nullptr || q->stop_fd < 0 || q->done_fd < 0) {
        syslog(LOG_WARNING, "FUSE over io_uring: out of memory or descriptors; staying on /dev/fuse");
        t->queues.push_back(std::move(q));
        g_transport = std::move(t);
        return;  // no thread started: the kernel never sees a registration
      }
      std::memset(e.header, 0, 4096);
      e.iov[0] = {e.header, sizeof(RingReqHeader)};
      e.iov[1] = {e.buf + kPrefix, t->payload_size};
    }
    t->queues.push_back(std::move(q));
  }
  g_live = t.get();
  for (auto& q : t->queues) q->thread = std::thread(RunQueue, q.get());
  g_transport = std::move(t);
}

void StopUringTransport() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_transport) return;
  for (auto& q : g_transport->queues) {
    if (q->stop_fd >= 0) (void)eventfd_write(q->stop_fd, 1);
  }
  for (auto& q : g_transport->queues) {
    if (q->thread.joinable()) q->thread.join();
  }
  // Offloaded requests finish on their own (the connection is gone, their replies land in
  // entries nobody commits); wait for them before the entries go.
  for (int i = 0; i < 500 && g_transport->offloads.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (g_transport->offloads.load() > 0) {
    syslog(LOG_WARNING, "FUSE over io_uring: offloaded requests still running at exit");
    (void)g_transport.release();  // leaked rather than freed under their feet (g_live too)
    return;
  }
  for (auto& q : g_transport->queues) {
    if (q->ring_ok) io_uring_queue_exit(&q->ring);  // cancels what the kernel still holds
    for (Entry& e : q->entries) {
      std::free(e.header);
      std::free(e.buf);
    }
    if (q->stop_fd >= 0) close(q->stop_fd);
    if (q->done_fd >= 0) close(q->done_fd);
  }
  if (g_transport->fuse_fd >= 0) close(g_transport->fuse_fd);
  g_transport.reset();
  g_live = nullptr;
}

bool UringTakeReply(const struct iovec* iov, int count, ssize_t* written) {
  Entry* e = t_serving;
  if (e == nullptr || count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return false;
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  if (out.unique != e->unique || e->committed) return false;  // a notification, or not ours
  ssize_t total = 0;
  for (int i = 0; i < count; ++i) total += static_cast<ssize_t>(iov[i].iov_len);
  // The header's own iovec may carry more than the header (libfuse sends it alone today).
  if (iov[0].iov_len > sizeof(out)) {
    std::vector<iovec> parts;
    parts.push_back({static_cast<char*>(iov[0].iov_base) + sizeof(out), iov[0].iov_len - sizeof(out)});
    for (int i = 1; i < count; ++i) parts.push_back(iov[i]);
    WriteReply(e, out.error, parts.data(), static_cast<int>(parts.size()));
  } else {
    WriteReply(e, out.error, iov + 1, count - 1);
  }
  // Dispatch commits it once the handler returns: committing here too would send a second
  // COMMIT_AND_FETCH for the same request, which the kernel fails with ENOENT.
  t_serving = nullptr;  // one reply per request
  *written = total;
  return true;
}

char* UringReplyBuffer(size_t* size) {
  Entry* e = t_serving;
  if (e == nullptr || g_live == nullptr) return nullptr;
  *size = g_live->payload_size;
  return e->buf + kPrefix;
}

}  // namespace udax
