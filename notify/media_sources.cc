// media_sources.cc -- choosing and starting the event sources for one Region.
#include "notify/media_sources.h"

#include <sys/stat.h>

namespace udax {

Result<std::unique_ptr<MediaSources>> MediaSources::Start(Region* region, EventQueue* queue,
                                                          const Options& options) {
  std::unique_ptr<MediaSources> s(new MediaSources());
  {
    MutexLock lock(&s->mu_);
    s->region_ = region;
    s->watched_.assign(region->device_count(), false);
  }
  region->set_fault_listener([queue](const MediaFault& f) { queue->Push(MediaEventFromFault(f)); });

  // Per device (one on most filesystems): its list files or its kernel badblocks, with
  // events moved to where the device starts in the region.
  for (size_t d = 0; d < region->device_count(); ++d) {
    if (region->device_lost(d)) continue;  // gone: nothing of it to watch
    MutexLock lock(&s->mu_);
    UDAX_RETURN_IF_ERROR(s->StartDevice(region->device(d), region->device_start(d), queue, options,
                                        /*at_start=*/true));
    s->watched_[d] = true;
  }

  if (options.early_kill) {
    // The receiver first: with early kill on and nobody taking AO, the first one kills us.
    UDAX_ASSIGN_OR_RETURN(s->ao_, SigbusAoReceiver::Start(region->base(), region->size(), queue));
    UDAX_RETURN_IF_ERROR(EnableEarlyMceKill());
  }
  return s;
}

Status MediaSources::AddDevice(size_t d, EventQueue* queue, const Options& options) {
  MutexLock lock(&mu_);
  if (region_ == nullptr) return Status::Error(ESHUTDOWN, "the media sources are stopped");
  if (d >= watched_.size()) return Status::InvalidArgument("no device " + std::to_string(d));
  if (watched_[d]) return Status::Ok();
  UDAX_RETURN_IF_ERROR(StartDevice(region_->device(d), region_->device_start(d), queue, options,
                                   /*at_start=*/false));
  watched_[d] = true;
  return Status::Ok();
}

Status MediaSources::StartDevice(Region* device, uint64_t base, EventQueue* queue,
                                 const Options& options, bool at_start) {
  // What Start's caller reads once (kernel(), skipped()) is only written by Start.
  std::vector<std::string> ignored;
  std::vector<std::string>& skipped = at_start ? skipped_ : ignored;
  if (!device->badblocks_path().empty()) {
    BadblockListWatcher::Options wo;
    wo.region_size = device->size();
    wo.base = base;
    UDAX_ASSIGN_OR_RETURN(
        auto watcher,
        BadblockListWatcher::Start(
            device->badblocks_path(),
            [device](const BadblockList& list) { device->SetEmulatedPoison(list); }, queue, wo));
    watchers_.push_back(std::move(watcher));
    // The latent list is followed too, so reads fail on it, but never announced: it is
    // found by the read that consumes it, as poison the platform did not report.
    wo.announce = false;
    UDAX_ASSIGN_OR_RETURN(
        auto latent,
        BadblockListWatcher::Start(
            device->latent_path(),
            [device](const BadblockList& list) { device->SetLatentPoison(list); }, queue, wo));
    watchers_.push_back(std::move(latent));
  }

  Result<KernelBadblocks> kb = LocateKernelBadblocks(device->path());
  if (kb.ok()) {
    if (at_start && !kernel_) kernel_ = kb.value();  // the patrol's scrub: the first device's bus
    BadblocksPoller::Options po;
    po.base = base;
    auto poller = BadblocksPoller::StartFor(kb.value(), queue, po);
    if (poller.ok()) {
      pollers_.push_back(std::move(poller).value());
    } else {
      skipped.push_back("kernel badblocks: " + poller.status().message());
    }
    UeventListener::Options uo;
    uo.region_size = device->size();
    uo.base = base;
    uo.sysfs_root = options.sysfs_root;
    auto uevents = UeventListener::Start({kb->devpath}, queue, uo);
    if (uevents.ok()) {
      uevents_.push_back(std::move(uevents).value());
    } else {
      skipped.push_back("uevents: " + uevents.status().message());
    }
  } else if (kb.status().code() != EOPNOTSUPP) {
    skipped.push_back("kernel badblocks: " + kb.status().message());
  }
  return Status::Ok();
}

void MediaSources::Stop() {
  MutexLock lock(&mu_);
  if (region_ == nullptr) return;
  for (auto& w : watchers_) w->Stop();
  for (auto& p : pollers_) p->Stop();
  for (auto& u : uevents_) u->Stop();
  region_ = nullptr;
}

}  // namespace udax
