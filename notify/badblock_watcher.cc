// badblock_watcher.cc -- inotify on the image's directory, reread, diff, emit.
#include "notify/badblock_watcher.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fs/base/safe_file.h"

namespace udax {
namespace {

// Everything that can make the list file's content different: a rename onto it (how
// udaxctl writes), an in-place edit, a removal (the list became empty).
constexpr uint32_t kWatchMask =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ONLYDIR;

}  // namespace

BadblockListWatcher::BadblockListWatcher(std::string list_path, OnChange on_change,
                                         EventQueue* queue, const Options& options,
                                         UniqueFd inotify, SourceThread thread,
                                         StopSignal rescan)
    : path_(std::move(list_path)),
      name_(BaseName(path_)),
      on_change_(std::move(on_change)),
      announce_(options.announce),
      inotify_(std::move(inotify)),
      rescan_(std::move(rescan)),
      set_(queue, {MediaEventSource::kInjected, path_, options.region_size, options.base}),
      thread_(std::move(thread)) {}

Result<std::unique_ptr<BadblockListWatcher>> BadblockListWatcher::Start(
    const std::string& list_path, OnChange on_change, EventQueue* queue, const Options& options) {
  UniqueFd in(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!in.valid()) return Status::FromErrno("inotify_init1");
  // Watch before the first read, so that no change between the two is missed.
  const std::string dir = DirName(list_path);
  if (inotify_add_watch(in.get(), dir.c_str(), kWatchMask) < 0) {
    return Status::FromErrno(dir + ": inotify_add_watch");
  }
  UDAX_ASSIGN_OR_RETURN(SourceThread thread, SourceThread::Create());
  UDAX_ASSIGN_OR_RETURN(StopSignal rescan, StopSignal::Create());
  std::unique_ptr<BadblockListWatcher> w(new BadblockListWatcher(
      list_path, std::move(on_change), queue, options, std::move(in), std::move(thread),
      std::move(rescan)));
  UDAX_RETURN_IF_ERROR(w->Reload(options.emit_initial));
  w->thread_.Start([raw = w.get()] { raw->Run(); });
  return w;
}

Status BadblockListWatcher::Reload(bool emit) {
  return set_.Apply(ReadBadblockListFile(path_), on_change_, emit && announce_);
}

void BadblockListWatcher::Run() {
  alignas(struct inotify_event) char buf[4096];
  for (;;) {
    struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {rescan_.fd(), POLLIN, 0}};
    // An error cannot happen with valid descriptors; nothing would be left to watch.
    Result<Wake> wake = thread_.Wait(fds);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    bool changed = false;
    if (fds[1].revents != 0) {
      rescan_.Drain();
      changed = true;
    }
    if (fds[0].revents != 0) {
      for (;;) {
        const ssize_t n = read(inotify_.get(), buf, sizeof(buf));
        if (n <= 0) break;  // EAGAIN: drained
        for (ssize_t off = 0; off < n;) {
          const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
          // An overflowed queue may have lost our file's event: reread to be sure.
          if ((ev->mask & IN_Q_OVERFLOW) != 0) changed = true;
          if (ev->len > 0 && name_ == ev->name) changed = true;
          off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
        }
      }
    }
    // A malformed file is recorded in last_error_ and otherwise ignored: the previous
    // poison stays in force until a readable list replaces it.
    if (changed) (void)Reload(true);
  }
}

}  // namespace udax
