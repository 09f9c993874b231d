// media_sources.cc -- choosing and starting the event sources for one Region.
#include "notify/media_sources.h"

#include <sys/stat.h>

namespace udax {

Result<std::unique_ptr<MediaSources>> MediaSources::Start(Region* region, EventQueue* queue,
                                                          const Options& options) {
  std::unique_ptr<MediaSources> s(new MediaSources());
  s->region_ = region;
  region->set_fault_listener([queue](const MediaFault& f) { queue->Push(MediaEventFromFault(f)); });

  if (!region->badblocks_path().empty()) {
    BadblockListWatcher::Options wo;
    wo.region_size = region->size();
    UDAX_ASSIGN_OR_RETURN(
        s->watcher_,
        BadblockListWatcher::Start(
            region->badblocks_path(),
            [region](const BadblockList& list) { region->SetEmulatedPoison(list); }, queue, wo));
    // The latent list is followed too, so reads fail on it, but never announced: it is
    // found by the read that consumes it, as poison the platform did not report.
    wo.announce = false;
    UDAX_ASSIGN_OR_RETURN(
        s->latent_watcher_,
        BadblockListWatcher::Start(
            region->latent_path(),
            [region](const BadblockList& list) { region->SetLatentPoison(list); }, queue, wo));
  }

  Result<KernelBadblocks> kb = LocateKernelBadblocks(region->path());
  if (kb.ok()) {
    s->kernel_ = kb.value();
    auto poller = BadblocksPoller::StartFor(kb.value(), queue, {});
    if (poller.ok()) {
      s->poller_ = std::move(poller).value();
    } else {
      s->skipped_.push_back("kernel badblocks: " + poller.status().message());
    }
    UeventListener::Options uo;
    uo.region_size = region->size();
    uo.sysfs_root = options.sysfs_root;
    auto uevents = UeventListener::Start({kb->devpath}, queue, uo);
    if (uevents.ok()) {
      s->uevents_ = std::move(uevents).value();
    } else {
      s->skipped_.push_back("uevents: " + uevents.status().message());
    }
  } else if (kb.status().code() != EOPNOTSUPP) {
    s->skipped_.push_back("kernel badblocks: " + kb.status().message());
  }

  if (options.early_kill) {
    // The receiver first: with early kill on and nobody taking AO, the first one kills us.
    UDAX_ASSIGN_OR_RETURN(s->ao_, SigbusAoReceiver::Start(region->base(), region->size(), queue));
    UDAX_RETURN_IF_ERROR(EnableEarlyMceKill());
  }
  return s;
}

void MediaSources::Stop() {
  if (region_ == nullptr) return;
  if (watcher_) watcher_->Stop();
  if (latent_watcher_) latent_watcher_->Stop();
  if (poller_) poller_->Stop();
  if (uevents_) uevents_->Stop();
  region_ = nullptr;
}

}  // namespace udax
