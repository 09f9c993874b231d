// badblocks_poller.cc -- poll(POLLPRI) on a sysfs badblocks attribute, reread, diff, emit.
#include "notify/badblocks_poller.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace udax {

BadblocksPoller::BadblocksPoller(std::string poll_file, UniqueFd file, Reader reader,
                                 EventQueue* queue, Options options, SourceThread thread,
                                 StopSignal rescan)
    : poll_file_(std::move(poll_file)),
      file_(std::move(file)),
      reader_(std::move(reader)),
      options_(std::move(options)),
      rescan_(std::move(rescan)),
      set_(queue, {MediaEventSource::kBadblocks, poll_file_, UINT64_MAX, options_.base}),
      thread_(std::move(thread)) {}

Result<std::unique_ptr<BadblocksPoller>> BadblocksPoller::Start(const std::string& poll_file,
                                                                Reader reader, EventQueue* queue,
                                                                Options options) {
  UniqueFd file;
  if (!poll_file.empty()) {
    file = UniqueFd(open(poll_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.valid()) return Status::FromErrno(poll_file + ": open");
  }
  UDAX_ASSIGN_OR_RETURN(SourceThread thread, SourceThread::Create());
  UDAX_ASSIGN_OR_RETURN(StopSignal rescan, StopSignal::Create());
  const bool emit = options.emit_initial;
  std::unique_ptr<BadblocksPoller> p(new BadblocksPoller(poll_file, std::move(file),
                                                         std::move(reader), queue,
                                                         std::move(options), std::move(thread),
                                                         std::move(rescan)));
  // Read (arm) before the first poll: sysfs reports a change relative to the last read.
  p->Rearm();
  UDAX_RETURN_IF_ERROR(p->Reload(emit));
  p->thread_.Start([raw = p.get()] { raw->Run(); });
  return p;
}

Result<std::unique_ptr<BadblocksPoller>> BadblocksPoller::StartFor(const KernelBadblocks& where,
                                                                   EventQueue* queue,
                                                                   Options options) {
  return Start(where.badblocks_file, [where] { return ReadKernelBadblocks(where); }, queue,
               std::move(options));
}

void BadblocksPoller::Rearm() {
  if (!file_.valid()) return;
  char buf[4096];
  if (lseek(file_.get(), 0, SEEK_SET) < 0) return;
  for (;;) {
    const ssize_t n = read(file_.get(), buf, sizeof(buf));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
}

Status BadblocksPoller::Reload(bool emit) {
  Result<BadblockList> read = reader_();
  reads_.fetch_add(1);
  return set_.Apply(std::move(read), options_.on_change, emit);
}

void BadblocksPoller::Run() {
  bool watch_file = file_.valid();
  for (;;) {
    struct pollfd fds[2] = {{rescan_.fd(), POLLIN, 0},
                            {watch_file ? file_.get() : -1, POLLPRI | POLLERR, 0}};
    Result<Wake> wake = thread_.Wait(fds);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    bool reread = false;
    if (fds[0].revents != 0) {
      rescan_.Drain();
      reread = true;
    }
    const short fr = fds[1].revents;
    if ((fr & (POLLPRI | POLLERR)) != 0) {
      notifications_.fetch_add(1);
      Rearm();
      reread = true;
    }
    // A descriptor that can never notify (hung-up pipe, closed file) would spin the loop;
    // from then on only Rescan rereads.
    if ((fr & (POLLHUP | POLLNVAL)) != 0 && (fr & (POLLPRI | POLLERR)) == 0) watch_file = false;
    // A failed reread keeps the previous list in force; last_error() tells why.
    if (reread) (void)Reload(true);
  }
}

}  // namespace udax
