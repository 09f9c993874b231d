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
    s->devices_.resize(region->device_count());
  }
  region->set_fault_listener([queue](const MediaFault& f) { queue->Push(MediaEventFromFault(f)); });

  // Per device (one on most filesystems): its list files or its kernel badblocks, with
  // events moved to where the device starts in the region.
  for (size_t d = 0; d < region->device_count(); ++d) {
    if (region->device_lost(d)) continue;  // gone: nothing of it to watch
    MutexLock lock(&s->mu_);
    UDAX_RETURN_IF_ERROR(s->StartDevice(d, queue, options, /*at_start=*/true));
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
  if (d >= devices_.size()) return Status::InvalidArgument("no device " + std::to_string(d));
  if (devices_[d].started) return Status::Ok();
  return StartDevice(d, queue, options, /*at_start=*/false);
}

void MediaSources::StopDevice(size_t d) {
  MutexLock lock(&mu_);
  if (d < devices_.size()) devices_[d].Stop();
}

void MediaSources::DeviceSources::Stop() {
  for (auto& w : watchers) w->Stop();
  for (auto& p : pollers) p->Stop();
  for (auto& u : uevents) u->Stop();
  watchers.clear();
  pollers.clear();
  uevents.clear();
  started = false;
}

Status MediaSources::StartDevice(size_t d, EventQueue* queue, const Options& options,
                                 bool at_start) {
  Region* device = region_->device(d);
  const uint64_t base = region_->device_start(d);
  DeviceSources& mine = devices_[d];
  // Whatever starts below is stopped with the rest, even if a later source fails.
  mine.started = true;
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
    mine.watchers.push_back(std::move(watcher));
    // The latent list is followed too, so reads fail on it, but never announced: it is
    // found by the read that consumes it, as poison the platform did not report.
    wo.announce = false;
    UDAX_ASSIGN_OR_RETURN(
        auto latent,
        BadblockListWatcher::Start(
            device->latent_path(),
            [device](const BadblockList& list) { device->SetLatentPoison(list); }, queue, wo));
    mine.watchers.push_back(std::move(latent));
  }

  Result<KernelBadblocks> kb = LocateKernelBadblocks(device->path());
  if (kb.ok()) {
    if (at_start && !kernel_) kernel_ = kb.value();  // the patrol's scrub: the first device's bus
    BadblocksPoller::Options po;
    po.base = base;
    auto poller = BadblocksPoller::StartFor(kb.value(), queue, po);
    if (poller.ok()) {
      mine.pollers.push_back(std::move(poller).value());
    } else {
      skipped.push_back("kernel badblocks: " + poller.status().message());
    }
    UeventListener::Options uo;
    uo.region_size = device->size();
    uo.base = base;
    uo.sysfs_root = options.sysfs_root;
    auto uevents = UeventListener::Start({kb->devpath}, queue, uo);
    if (uevents.ok()) {
      mine.uevents.push_back(std::move(uevents).value());
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
  for (DeviceSources& d : devices_) d.Stop();
  region_ = nullptr;
}

}  // namespace udax
