// source_thread.cc -- a stop signal and the one thread that waits on it.
#include "fs/base/source_thread.h"

#include <utility>

namespace udax {

Result<SourceThread> SourceThread::Create() {
  UDAX_ASSIGN_OR_RETURN(StopSignal stop, StopSignal::Create());
  return SourceThread(std::move(stop));
}

SourceThread& SourceThread::operator=(SourceThread&& other) noexcept {
  if (this != &other) {
    Stop();
    stop_ = std::move(other.stop_);
    thread_ = std::move(other.thread_);
  }
  return *this;
}

void SourceThread::Start(std::function<void()> body) { thread_ = std::thread(std::move(body)); }

bool SourceThread::Stop() {
  if (!thread_.joinable()) return false;
  stop_->Notify();
  thread_.join();
  return true;
}

}  // namespace udax
