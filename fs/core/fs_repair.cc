// fs_repair.cc -- fsck's driver: a tolerant open (superblock, journal, journal state),
// the merged check, the repair passes and the second check (see repair.h).
#include <cstring>
#include <set>

#include "fs/core/repair.h"

namespace udax {
namespace {

constexpr size_t kMaxFixMessages = 200;

// Appends `from` to `into`, each message once; problems beyond the kept messages count.
void MergeInto(CheckReport* into, std::set<std::string>* seen, const CheckReport& from) {
  for (const std::string& m : from.messages) {
    if (seen->insert(m).second) into->Add(m);
  }
  if (from.problems > from.messages.size()) into->problems += from.problems - from.messages.size();
}

}  // namespace

int FsckOutcome::ExitCode() const {
  if (!degraded.empty()) return kFsckUncorrected;
  if (!repaired) return found.problems ? kFsckUncorrected : kFsckClean;
  if (remaining.problems) return kFsckUncorrected;
  return found.problems || !fixed.empty() ? kFsckFixed : kFsckClean;
}

Result<FsckOutcome> Repairer::Run(const std::string& target, const FsckOptions& options) {
  RegionOptions ro;
  ro.read_only = options.read_only;
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> region, Region::Open(target, ro));
  return RunOnRegion(std::move(region), options);
}

Result<FsckOutcome> Repairer::RunOnRegion(std::unique_ptr<Region> region,
                                          const FsckOptions& options) {
  Repairer r(options);
  return r.RunOn(std::move(region));
}

Result<CheckReport> Repairer::CheckAll(Filesystem* fs) {
  Repairer r(FsckOptions{});
  return r.CheckWithProgress(fs, 1);
}

void Repairer::Progress(int pass, uint64_t done, uint64_t total) {
  if (!options_.progress) return;
  options_.progress(pass, passes_, total ? static_cast<double>(done) / total : 1.0);
}

void Repairer::Fixed(std::string what) {
  if (out_.fixed.size() < kMaxFixMessages) {
    out_.fixed.push_back(std::move(what));
  } else if (out_.fixed.size() == kMaxFixMessages) {
    out_.fixed.push_back("... (more repairs not listed)");
  }
}

Status Repairer::CommitIfLarge() {
  fs_->AssumeUnshared();
  if (fs_->txn_.log_bytes() > fs_->journal_->capacity() / 4) return fs_->Commit();
  return Status::Ok();
}

Result<CheckReport> Repairer::CheckWithProgress(Filesystem* fs, int first_pass) {
  CheckReport merged;
  std::set<std::string> seen;
  auto run = [&](int pass, auto check) -> Status {
    fs->checker().set_progress(
        [this, pass](uint64_t done, uint64_t total) { Progress(pass, done, total); });
    Progress(pass, 0, 1);
    auto report = check();
    fs->checker().set_progress(nullptr);
    if (!report.ok()) return report.status();
    if (pass == first_pass) {
      merged.inodes = report->inodes;
      merged.allocated_aus = report->allocated_aus;
    }
    MergeInto(&merged, &seen, *report);
    Progress(pass, 1, 1);
    return Status::Ok();
  };
  UDAX_RETURN_IF_ERROR(run(first_pass, [fs] { return fs->checker().CrossCheckMaps(); }));
  UDAX_RETURN_IF_ERROR(run(first_pass + 1, [fs] { return fs->checker().CheckNamespace(); }));
  UDAX_RETURN_IF_ERROR(run(first_pass + 2, [fs] { return fs->checker().Scrub(); }));
  return merged;
}

Result<FsckOutcome> Repairer::RunOn(std::unique_ptr<Region> region) {
  const bool fix = options_.repair && !options_.read_only && !region->read_only();
  passes_ = fix ? 8 : 3;
  CheckReport opened;
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Filesystem> fs, Open(std::move(region), fix, &opened));
  fs_ = fs.get();
  UDAX_ASSIGN_OR_RETURN(CheckReport checked, CheckWithProgress(fs.get(), 1));
  std::set<std::string> seen;
  MergeInto(&out_.found, &seen, opened);
  MergeInto(&out_.found, &seen, checked);
  out_.found.inodes = checked.inodes;
  out_.found.allocated_aus = checked.allocated_aus;
  out_.remaining = out_.found;
  UDAX_ASSIGN_OR_RETURN(out_.degraded, fs->DegradedSummary());
  const bool orphans = fs->state_.orphan_head != 0;
  if (!fix || (out_.found.problems == 0 && !orphans && out_.fixed.empty())) {
    // A clean unmount retires the journal slot: not while it holds a damaged
    // transaction that only a repair may discard.
    if (!fs->options_.read_only && !journal_damaged_) UDAX_RETURN_IF_ERROR(fs->Unmount());
    return std::move(out_);
  }

  out_.repaired = true;
  UDAX_RETURN_IF_ERROR(RepairCopies());
  UDAX_RETURN_IF_ERROR(RepairMaps());
  UDAX_RETURN_IF_ERROR(RepairNamespace());
  UDAX_RETURN_IF_ERROR(fs->Unmount());
  if (fs->shut_down()) return Status::IoError("repair stopped: " + fs->shutdown_reason_);

  // A fresh open and check: what it finds is what the repair could not fix.
  region = std::move(fs->region_);
  fs_ = nullptr;
  fs.reset();
  CheckReport reopened;
  UDAX_ASSIGN_OR_RETURN(fs, Open(std::move(region), false, &reopened));
  fs_ = fs.get();
  UDAX_ASSIGN_OR_RETURN(CheckReport rechecked, CheckWithProgress(fs.get(), 6));
  out_.remaining = CheckReport{};
  seen.clear();
  MergeInto(&out_.remaining, &seen, reopened);
  MergeInto(&out_.remaining, &seen, rechecked);
  out_.remaining.inodes = rechecked.inodes;
  out_.remaining.allocated_aus = rechecked.allocated_aus;
  UDAX_RETURN_IF_ERROR(fs->Unmount());
  fs_ = nullptr;
  return std::move(out_);
}

// --- pass 1b: metadata copies ---------------------------------------------------------

Status Repairer::RepairCopies() {
  fs_->AssumeUnshared();
  if (!HasMetaCopies(fs_->sb_)) return Status::Ok();
  // The scrub compares both copies of every record in use and, allowed to mend, writes
  // the good copy over the bad one: before the passes below read the first copies.
  fs_->mend_copies_ = true;
  auto scrub = fs_->checker().Scrub();
  if (!scrub.ok()) return scrub.status();
  for (const std::string& m : scrub->messages) {
    if (m.find("rewritten from the other copy") != std::string::npos) Fixed(m);
  }
  return Status::Ok();
}

// --- the tolerant open -------------------------------------------------------------------


Result<DiskSuperblock> Repairer::OpenSuperblock(Region* region, bool fix, CheckReport* found) {
  const uint64_t size = region->size();
  DiskSuperblock primary, replica;
  // A copy that does not read (poison) is as bad as one whose checksum fails.
  Status pst = region->ReadSafe(0, &primary, sizeof(primary));
  if (pst.ok()) {
    Status lone = RefuseLoneDevice(primary, size, region->device_count());
    if (!lone.ok()) return Status::InvalidArgument(region->path() + ": " + lone.message());
  }
  if (pst.ok()) pst = SuperblockVerify(primary, size);
  // The replica went with a lost last device: the primary is all there is (degraded).
  // (Or with an older copy of the last device, lost for that by the span.)
  const bool replica_lost =
      pst.ok() && (DeviceLost(primary, DeviceOfOffset(primary, primary.replica_off)) ||
                   (IsMultiDevice(primary) &&
                    region->device_lost(DeviceOfOffset(primary, primary.replica_off))));
  // Where the replica is: the primary says; without one, the end of the target.
  const uint64_t replica_off = pst.ok() ? primary.replica_off : size - kBlockSize;
  Status rst = region->ReadSafe(replica_off, &replica, sizeof(replica));
  if (rst.ok()) rst = SuperblockVerify(replica, size);
  if (rst.ok() && replica.replica_off != replica_off) {
    rst = Status::Corruption("superblock replica does not describe its own place");
  }
  if (!pst.ok() && !rst.ok()) {
    return Status::Corruption(region->path() + ": no valid superblock: primary: " +
                              pst.message() + "; replica: " + rst.message());
  }
  if (!pst.ok()) {
    found->Add("superblock: " + pst.message());
    if (fix) {
      UDAX_RETURN_IF_ERROR(region->WriteSafe(0, &replica, sizeof(replica), true));
      UDAX_RETURN_IF_ERROR(region->ClearRewrittenPoison(0, sizeof(replica)));
      Fixed("superblock: restored from the replica");
    }
    return replica;
  }
  // The copies that begin the other devices of a multi-device filesystem.
  for (uint32_t d = 1; d < DeviceCount(primary); ++d) {
    // Stale by design until a resync; or an older copy of itself (a restored backup),
    // lost for that by the span: never made to look current.
    if (DeviceLost(primary, d) || region->device_lost(d)) continue;
    const DiskSuperblock want = DeviceCopy(primary, d);
    DiskSuperblock have;
    const uint64_t at = primary.devices[d].start;
    Status cst = region->ReadSafe(at, &have, sizeof(have));
    if (cst.ok() && std::memcmp(&have, &want, sizeof(want)) == 0) continue;
    found->Add("superblock copy on device " + std::to_string(d) + ": " +
               (cst.ok() ? "differs from the primary" : cst.message()));
    if (fix) {
      UDAX_RETURN_IF_ERROR(region->WriteSafe(at, &want, sizeof(want), true));
      UDAX_RETURN_IF_ERROR(region->ClearRewrittenPoison(at, sizeof(want)));
      Fixed("superblock copy on device " + std::to_string(d) + ": rewritten from the primary");
    }
  }
  if (replica_lost) {
    return primary;
  } else if (!rst.ok()) {
    found->Add("superblock replica: " + rst.message());
  } else if (std::memcmp(&primary, &replica, sizeof(primary)) != 0) {
    found->Add("superblock replica differs from the primary");
  } else {
    return primary;
  }
  if (fix) {
    UDAX_RETURN_IF_ERROR(region->WriteSafe(replica_off, &primary, sizeof(primary), true));
    UDAX_RETURN_IF_ERROR(region->ClearRewrittenPoison(replica_off, sizeof(primary)));
    Fixed("superblock replica: rewritten from the primary");
  }
  return primary;
}

Status Repairer::OpenJournal(Filesystem* fs, bool fix, CheckReport* found) {
  fs->AssumeUnshared();
  Journal& journal = *fs->journal_;
  if (fs->options_.read_only) {
    auto pending = journal.NeedsReplay();
    if (!pending.ok()) {
      if (pending.status().code() != EUCLEAN) return pending.status();
      found->Add(pending.status().message());
    } else if (*pending) {
      out_.notes.push_back("the journal holds an unapplied transaction (not replayed with -n: "
                           "what follows may report its changes as problems)");
    }
  } else {
    auto replayed = journal.Replay();
    if (!replayed.ok()) {
      if (replayed.status().code() != EUCLEAN) return replayed.status();
      found->Add(replayed.status().message());
      journal_damaged_ = true;
      if (fix) {
        UDAX_RETURN_IF_ERROR(journal.Retire());
        Fixed("journal: discarded the damaged transaction");
      }
    } else if (*replayed) {
      out_.notes.push_back("journal replayed");
    }
  }
  DiskJournalState& state = fs->state_;
  UDAX_RETURN_IF_ERROR(fs->region_->ReadSafe(fs->sb_.journal_off, &state, sizeof(state)));
  if (JournalStateValid(state)) return Status::Ok();
  found->Add("journal state block: checksum mismatch");
  // Without the orphan list, orphans are unreachable inodes with no links: pass 3 frees
  // them all the same.
  std::memset(&state, 0, sizeof(state));
  state.magic = kJournalStateMagic;
  JournalStateSeal(&state);
  if (fix) {
    fs->txn_.WriteObj(journal.state_offset(), state);
    UDAX_RETURN_IF_ERROR(fs->Commit());
    Fixed("journal state block: rewritten (empty orphan list)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Filesystem>> Repairer::Open(std::unique_ptr<Region> region, bool fix,
                                                   CheckReport* found) {
  const std::string target = region->path();
  if (region->size() < kMinRegionSize / 2) {
    return Status::InvalidArgument(target + ": too small to hold a udaxfs (" +
                                   std::to_string(region->size()) + " bytes)");
  }
  std::unique_ptr<Filesystem> fs(new Filesystem());
  fs->AssumeUnshared();
  fs->options_.read_only = region->read_only();
  // The check reports a bad copy of metadata; only the repair mends it (RepairCopies).
  fs->mend_copies_ = false;
  fs->region_ = std::move(region);
  Region* r = fs->region_.get();
  UDAX_ASSIGN_OR_RETURN(fs->sb_, OpenSuperblock(r, fix, found));
  const DiskSuperblock& sb = fs->sb_;
  // Lost devices stay lost (their copies are stale), as at mount.
  for (uint32_t d = 1; d < DeviceCount(sb); ++d) {
    if (DeviceLost(sb, d)) UDAX_RETURN_IF_ERROR(r->LoseDevice(d));
  }
  fs->journal_ = std::make_unique<Journal>(r, sb);
  UDAX_RETURN_IF_ERROR(OpenJournal(fs.get(), fix, found));
  UDAX_RETURN_IF_ERROR(fs->space_.Load(r, sb));  // (retires the lost devices)
  return fs;
}

}  // namespace udax
