#include "commands/args.h"
#include "server/backups.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "backup/archive.h"
#include "backup/ops.h"
#include "common/logging.h"
#include "observe/metrics.h"
#include "server/server.h"
#include "write/writer.h"
#include "wal/cursor.h"

namespace levee::server {
namespace {

constexpr int64_t kLeaseIdleMs = 120 * 1000;
constexpr size_t kMaxRead = 64 << 20;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

BackupService::BackupService(Server* server) : server_(server) {}

BackupService::~BackupService() { Stop(); }

Status BackupService::Start() {
  Config& c = server_->config();
  int64_t ms;
  for (const char* name : {"backup-schedule", "backup-verify-schedule", "backup-wal-archive-interval"}) {
    if (!backup::ParseInterval(c.GetString(name), &ms)) {
      return Status::InvalidArgument(std::string(name) + " '" + c.GetString(name) +
                                     "' is not an interval: use a number with s, m, h or d (30m, 6h, 1d), or off");
    }
  }
  backup::RemoveStaleHolds(server_->data_dir());
  if (!c.GetString("backup-repo").empty()) {
    // Fail at start, not six hours later: the URL, the key and the
    // credentials must at least parse. (The store is reached at the first run.)
    auto repo = backup::OpenStore(c.GetString("backup-repo"), backup::StoreOptions{});
    if (!repo.ok()) return repo.status();
    if (!c.GetString("backup-key-file").empty()) {
      auto key = backup::Key::LoadFile(c.GetString("backup-key-file"));
      if (!key.ok()) return key.status();
    }
  }
  scheduler_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-backup");
    Schedule();
  });
  archive_caught_up_s_ = static_cast<double>(WallMs()) / 1000;
  archiver_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-archive");
    ArchiveLoop();
  });
  return Status::OK();
}

void BackupService::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    thaw_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  if (archiver_.joinable()) archiver_.join();
  if (freezer_.joinable()) freezer_.join();
  std::lock_guard<std::mutex> l(mu_);
  leases_.clear();
}

void BackupService::Suspend() {
  std::unique_lock<std::mutex> l(mu_);
  suspended_ = true;
  cancel_ = true;
  cv_.wait(l, [this] { return !running_ && !archiving_; });
  leases_.clear();
  thaw_ = true;
  cv_.notify_all();
}

void BackupService::Resume() {
  std::lock_guard<std::mutex> l(mu_);
  suspended_ = false;
  cancel_ = false;
}

StatusOr<std::unique_ptr<backup::Repository>> BackupService::OpenRepo(bool create) {
  Config& c = server_->config();
  backup::RepoOptions o;
  o.create = create;
  o.store.endpoint = c.GetString("backup-s3-endpoint");
  o.store.region = c.GetString("backup-s3-region");
  if (!c.GetString("backup-key-file").empty()) {
    auto key = backup::Key::LoadFile(c.GetString("backup-key-file"));
    if (!key.ok()) return key.status();
    o.key = key.value();
  }
  return backup::Repository::Open(c.GetString("backup-repo"), o);
}

bool BackupService::ArchivingHere() {
  Config& c = server_->config();
  return c.GetBool("backup-wal-archive") && !c.GetString("backup-repo").empty() && ScheduledHere();
}

void BackupService::ArchiveLoop() {
  ArchiveState state;
  int64_t next = 0;
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    int64_t interval_ms = 0;
    if (!backup::ParseInterval(server_->config().GetString("backup-wal-archive-interval"), &interval_ms) ||
        interval_ms <= 0) {
      interval_ms = 60000;
    }
    cv_.wait_for(l, std::chrono::milliseconds(std::clamp<int64_t>(next - WallMs(), 10, 1000)),
                 [this] { return stopping_; });
    if (stopping_) break;
    if (WallMs() < next) continue;
    next = WallMs() + interval_ms;
    // The writer and the log are replaced while suspended (a full resync):
    // they are touched only inside archiving_, which Suspend waits out.
    if (suspended_) continue;
    archiving_ = true;
    l.unlock();
    if (!ArchivingHere()) {
      server_->writer().set_archive_retain(UINT64_MAX, 0);
      state = ArchiveState();
      l.lock();
      archiving_ = false;
      cv_.notify_all();
      continue;
    }
    ApplyCpuPriority();
    backup::LowerThreadPriority();  // again: backup-cpu-priority may have changed
    Status st = ArchivePass(&state);
    if (st.ok()) {
      archive_success_s_ = static_cast<double>(WallMs()) / 1000;
    } else {
      archive_failures_++;
      logging::Error("backup", "log archiving failed; will retry",
                     {{"error", st.message()}, {"repo", server_->config().GetString("backup-repo")}});
      state.repo.reset();  // reopen (and reread the archive) next time
    }
    // Hold the log from the first record the archive lacks; while that is
    // not known yet (no pass has reached the repository), hold all of it.
    uint64_t max_bytes = static_cast<uint64_t>(server_->config().GetInt("backup-wal-archive-max-mb")) << 20;
    uint64_t hold = state.timeline.empty() ? server_->log().first_sequence() : state.archived + 1;
    server_->writer().set_archive_retain(hold == 0 ? 1 : hold, max_bytes);
    l.lock();
    archiving_ = false;
    cv_.notify_all();
  }
}

Status BackupService::ArchivePass(ArchiveState* s) {
  wal::Log& log = server_->log();
  repl::ReplIds ids = server_->repl().ids();
  std::string url = server_->config().GetString("backup-repo");
  if (!s->repo || s->repo_url != url || s->timeline != ids.replid) {
    // First pass, a new repository, or a new timeline (a promotion or a full
    // resync): find where the archive ends. *s keeps the old position (and
    // with it the log's hold) until this succeeds.
    auto repo = OpenRepo(/*create=*/true);
    if (!repo.ok()) return repo.status();
    backup::ArchiveIndex index;
    LEVEE_RETURN_IF_ERROR(backup::LoadArchiveIndex(*repo.value(), &index));
    bool has_parent = ids.replid2.find_first_not_of('0') != std::string::npos;
    if (!index.timelines.count(ids.replid)) {
      backup::Timeline t{ids.replid, has_parent ? ids.replid2 : "", has_parent ? ids.second_offset : 0, WallMs()};
      LEVEE_RETURN_IF_ERROR(backup::WriteTimeline(*repo.value(), t));
      logging::Info("backup", "log archive timeline started",
                    {{"timeline", t.id}, {"parent", t.parent}, {"fork", t.fork}});
    }
    uint64_t after = index.LastArchived(ids.replid);
    // Reopening after a failed pass: what this server archived (or skipped
    // as a gap already counted) stands even if prune has since removed the
    // segments that a newer backup covers.
    if (s->timeline == ids.replid) after = std::max(after, s->archived);
    if (after == 0 && has_parent && index.LastArchived(ids.replid2) > 0) {
      // Carry on where the parent's archive ends (records up to the fork are
      // shared history, so they may go under this timeline).
      after = std::min(index.LastArchived(ids.replid2), ids.second_offset);
    } else if (after == 0) {
      after = log.first_sequence() == 0 ? log.last_sequence() : log.first_sequence() - 1;
    }
    s->repo = std::move(repo).value();
    s->repo_url = url;
    s->timeline = ids.replid;
    s->archived = after;
  }
  uint64_t target = log.last_sequence();
  double started_s = static_cast<double>(WallMs()) / 1000;
  wal::LogCursor cursor(&log);
  Status st = cursor.Seek(s->archived);
  if (st.code() == Status::Code::kNotFound) {
    // The log no longer holds what the archive needs: a gap. Point-in-time
    // restores cannot cross it; the next backup starts a usable stretch.
    uint64_t from = log.first_sequence() == 0 ? log.last_sequence() : log.first_sequence() - 1;
    archive_gaps_++;
    logging::Error("backup", "the log archive has a gap: records were trimmed before they were archived",
                   {{"timeline", s->timeline}, {"missing_from", s->archived + 1}, {"missing_through", from}});
    s->archived = from;
    st = cursor.Seek(s->archived);
  }
  LEVEE_RETURN_IF_ERROR(st);
  for (;;) {
    std::string framed;
    uint64_t last = s->archived;
    LEVEE_RETURN_IF_ERROR(cursor.Read(16 << 20, &framed, &last));
    if (last == s->archived) break;
    // Only durable records go out: one the server could still lose in a
    // crash would otherwise be archived and later reused for another write.
    LEVEE_RETURN_IF_ERROR(log.Sync());
    LEVEE_RETURN_IF_ERROR(backup::PutArchivedSegment(*s->repo, s->timeline, s->archived + 1, last, framed));
    archive_bytes_ += framed.size();
    s->archived = last;
    archive_last_sequence_ = last;
  }
  // Everything written before this pass started is archived.
  if (s->archived >= target) archive_caught_up_s_ = started_s;
  return Status::OK();
}

bool BackupService::ScheduledHere() {
  std::string role = server_->config().GetString("backup-schedule-role");
  // The replication manager's role, not the writer's: the writer is
  // replaced during a full resync, and metrics and the schedulers ask this.
  if (role == "primary") return !server_->repl().is_replica();
  if (role == "replica") return server_->repl().is_replica();
  return true;
}

void BackupService::Schedule() {
  int64_t now = WallMs();
  int64_t next_backup = 0, next_verify = 0;
  auto plan = [&](const char* name, int64_t from) {
    int64_t ms = 0;
    backup::ParseInterval(server_->config().GetString(name), &ms);
    return ms == 0 ? INT64_MAX : from + ms;
  };
  next_backup = plan("backup-schedule", now);
  next_verify = plan("backup-verify-schedule", now);
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    cv_.wait_for(l, std::chrono::seconds(1), [this] { return stopping_ || run_now_; });
    if (stopping_) break;
    now = WallMs();
    for (auto it = leases_.begin(); it != leases_.end();) {
      const int64_t max_ms = server_->config().GetInt("backup-lease-max-seconds") * 1000;
      if (now - it->second.last_used_ms > kLeaseIdleMs) {
        logging::Warn("backup", "dropped a checkpoint lease nobody used for two minutes", {{"lease", it->first}});
        it = leases_.erase(it);
      } else if (now - it->second.taken_ms > max_ms) {
        logging::Warn("backup", "dropped a checkpoint lease held longer than backup-lease-max-seconds",
                      {{"lease", it->first}, {"max_seconds", max_ms / 1000}});
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    bool configured = !server_->config().GetString("backup-repo").empty();
    // A schedule changed by CONFIG SET takes effect from now.
    next_backup = std::min(next_backup, plan("backup-schedule", now));
    next_verify = std::min(next_verify, plan("backup-verify-schedule", now));
    // backup-schedule-role: in a replicated set only the servers of the
    // chosen role run the schedule (one backup stream, not one per pod).
    if (configured && !ScheduledHere()) {
      if (now >= next_backup) next_backup = plan("backup-schedule", now);
      if (now >= next_verify) next_verify = plan("backup-verify-schedule", now);
    }
    bool backup_due = configured && (run_now_ || (now >= next_backup && ScheduledHere()));
    bool verify_due = configured && now >= next_verify && ScheduledHere();
    if (suspended_ || (!backup_due && !verify_due)) continue;
    run_now_ = false;
    running_ = true;
    cancel_ = false;
    l.unlock();
    if (backup_due) {
      RunBackup("scheduled");
      next_backup = plan("backup-schedule", WallMs());
    }
    if (verify_due) {
      RunVerify();
      next_verify = plan("backup-verify-schedule", WallMs());
    }
    l.lock();
    running_ = false;
    cv_.notify_all();
  }
}

void BackupService::ApplyCpuPriority() {
  backup::SetBackgroundCpuIdle(server_->config().GetString("backup-cpu-priority") == "idle");
}

void BackupService::RunBackup(const std::string& why) {
  Config& c = server_->config();
  ApplyCpuPriority();
  auto t0 = std::chrono::steady_clock::now();
  std::string repo_url = c.GetString("backup-repo");
  auto fail = [&](const Status& st, const std::string& stage) {
    last_failure_s_ = static_cast<double>(WallMs()) / 1000;
    failures_total_++;
    {
      std::lock_guard<std::mutex> l(mu_);
      last_error_ = st.message();
    }
    logging::Error("backup", "backup failed while " + stage, {{"repo", repo_url}, {"error", st.message()}});
  };
  auto repo = OpenRepo(true);
  if (!repo.ok()) return fail(repo.status(), "opening the repository");
  std::unique_ptr<backup::CheckpointLease> lease;
  {
    std::shared_lock<std::shared_mutex> data(server_->data_mutex());
    auto taken = backup::CheckpointLease::Take(
        &server_->engine(), &server_->log(), server_->data_dir(), server_->instance_id(),
        [this](const std::function<void()>& fn) { server_->RunOnWriter(fn); }, c.GetBool("backup-digest"),
        static_cast<uint64_t>(c.GetInt("backup-max-bytes-per-sec")),
        "server " + c.GetString("bind") + ":" + std::to_string(server_->port()) + " (" + why + ")");
    if (!taken.ok()) return fail(taken.status(), "taking a checkpoint");
    lease = std::move(taken.value());
  }
  backup::Progress progress(backup::Progress::Mode::kQuiet, "backup");
  backup::CreateOptions o;
  o.parallelism = static_cast<int>(c.GetInt("backup-parallelism"));
  o.max_bytes_per_sec = static_cast<uint64_t>(c.GetInt("backup-max-bytes-per-sec"));
  o.chunk_bytes = static_cast<uint64_t>(c.GetInt("backup-chunk-mb")) << 20;
  o.progress = &progress;
  o.cancel = &cancel_;
  o.background = true;
  logging::Info("backup", "backup started",
                {{"repo", repo_url}, {"applied_sequence", lease->info().applied_sequence},
                 {"barrier_us", lease->info().barrier_us}, {"files", lease->info().files.size()}});
  auto m = backup::CreateBackup(*repo.value(), *lease, o);
  lease.reset();
  if (!m.ok()) return fail(m.status(), "copying");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  last_success_s_ = static_cast<double>(WallMs()) / 1000;
  last_duration_s_ = secs;
  bytes_total_ += m.value().new_stored_bytes;
  last_new_bytes_ = m.value().new_bytes;
  last_barrier_us_ = m.value().barrier_us;
  backups_total_++;
  {
    std::lock_guard<std::mutex> l(mu_);
    last_id_ = m.value().id;
    last_error_.clear();
  }
  logging::Info("backup", "backup done",
                {{"repo", repo_url}, {"id", m.value().id}, {"applied_sequence", m.value().applied_sequence},
                 {"bytes", m.value().bytes}, {"read_bytes", m.value().read_bytes}, {"new_bytes", m.value().new_bytes},
                 {"barrier_us", m.value().barrier_us}, {"duration_s", secs}});
  backup::PruneOptions po;
  po.keep_last = static_cast<int>(c.GetInt("backup-keep-last"));
  po.keep_daily = static_cast<int>(c.GetInt("backup-keep-daily"));
  po.keep_weekly = static_cast<int>(c.GetInt("backup-keep-weekly"));
  po.lock_wait_ms = 10 * 60 * 1000;
  if (po.keep_last + po.keep_daily + po.keep_weekly == 0) return;
  auto pr = backup::Prune(*repo.value(), po);
  if (!pr.ok()) {
    logging::Warn("backup", "retention failed (the backup itself is fine)", {{"repo", repo_url}, {"error", pr.status().message()}});
    return;
  }
  logging::Info("backup", "retention applied",
                {{"kept", pr.value().kept.size()}, {"removed", pr.value().removed.size()},
                 {"objects_deleted", pr.value().objects_deleted}, {"bytes_freed", pr.value().bytes_freed}});
}

void BackupService::RunVerify() {
  Config& c = server_->config();
  ApplyCpuPriority();
  auto repo = OpenRepo(false);
  backup::VerifyOptions o;
  o.parallelism = static_cast<int>(c.GetInt("backup-parallelism"));
  o.max_bytes_per_sec = static_cast<uint64_t>(c.GetInt("backup-max-bytes-per-sec"));
  o.cancel = &cancel_;
  o.background = true;
  StatusOr<backup::VerifyReport> r = repo.ok() ? backup::VerifyBackup(*repo.value(), "latest", o)
                                                : StatusOr<backup::VerifyReport>(repo.status());
  if (r.ok() && r.value().problems.empty()) {
    verify_success_s_ = static_cast<double>(WallMs()) / 1000;
    logging::Info("backup", "verified the newest backup",
                  {{"id", r.value().manifest.id}, {"objects", r.value().objects}, {"bytes", r.value().bytes}});
    return;
  }
  verify_failure_s_ = static_cast<double>(WallMs()) / 1000;
  std::string why = r.ok() ? std::to_string(r.value().problems.size()) + " bad objects, first: " + r.value().problems[0]
                           : r.status().message();
  logging::Error("backup", "verification of the newest backup failed", {{"repo", c.GetString("backup-repo")}, {"error", why}});
}

void BackupService::Open(const std::vector<std::string>& a, resp::ReplyBuilder& rb) {
  ApplyCpuPriority();
  bool digest = server_->config().GetBool("backup-digest");
  uint64_t digest_rate = 0;  // the caller's own rate limit, for the digest read here
  for (size_t i = 2; i < a.size(); i++) {
    if (commands::EqualsIgnoreCase(a[i], "nodigest")) {
      digest = false;
    } else if (commands::EqualsIgnoreCase(a[i], "maxrate") && i + 1 < a.size()) {
      int64_t v;
      if (!ParseBytes(a[++i], &v) || v < 0) {
        return rb.Error("ERR BACKUP OPEN MAXRATE '" + a[i] + "' is not bytes per second (e.g. 104857600, 100mb, 0 for none)");
      }
      digest_rate = static_cast<uint64_t>(v);
    } else {
      return rb.Error("ERR unknown BACKUP OPEN option '" + a[i] + "' (known: NODIGEST, MAXRATE bytes-per-sec)");
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (suspended_) return rb.Error("BUSY a full resync is replacing the database; try again when it is done");
    const int64_t max_leases = server_->config().GetInt("backup-max-leases");
    if (static_cast<int64_t>(leases_.size()) >= max_leases) {
      return rb.Error("BUSY " + std::to_string(leases_.size()) + " checkpoints are already lent (backup-max-leases " +
                      std::to_string(max_leases) + "); wait for a backup to finish (BACKUP CLOSE), or raise the setting");
    }
  }
  auto taken = backup::CheckpointLease::Take(
      &server_->engine(), &server_->log(), server_->data_dir(), server_->instance_id(),
      [this](const std::function<void()>& fn) { server_->RunOnWriter(fn); }, digest, digest_rate, "");
  if (!taken.ok()) return rb.Error("ERR cannot take a checkpoint: " + taken.status().message());
  auto lease = std::move(taken.value());
  const backup::SourceInfo& info = lease->info();
  rb.ArrayHeader(7);
  rb.Bulk(lease->id());
  rb.Bulk(info.instance_id);
  rb.Integer(static_cast<int64_t>(info.applied_sequence));
  rb.Integer(info.time_ms);
  rb.Integer(static_cast<int64_t>(info.barrier_us));
  rb.Bulk(info.data_dir);
  rb.ArrayHeader(info.files.size());
  for (const auto& f : info.files) {
    rb.ArrayHeader(4);
    rb.Bulk(f.path);
    rb.Integer(static_cast<int64_t>(f.size));
    rb.Integer(f.mtime_ns);
    rb.Bulk(f.local_path);
  }
  logging::Info("backup", "lent a checkpoint",
                {{"lease", lease->id()}, {"applied_sequence", info.applied_sequence}, {"barrier_us", info.barrier_us},
                 {"files", info.files.size()}});
  std::lock_guard<std::mutex> l(mu_);
  std::string id = lease->id();
  leases_[id] = Lease{std::shared_ptr<backup::CheckpointLease>(std::move(lease)), WallMs(), WallMs()};
}

void BackupService::Freeze(int64_t seconds, resp::ReplyBuilder& rb) {
  std::unique_lock<std::mutex> l(mu_);
  if (frozen_ || freezer_.joinable()) {
    if (!frozen_ && freezer_.joinable()) {
      l.unlock();
      freezer_.join();
      l.lock();
    } else {
      return rb.Error("ERR writes are already frozen; BACKUP THAW first");
    }
  }
  thaw_ = false;
  Status sync_status;
  freezer_ = std::thread([this, seconds, &sync_status] {
    server_->RunOnWriter([&] {
      // On the writer: nothing is being written. Make what is written
      // durable, so a volume snapshot taken now holds it.
      Status st = server_->log().Sync();
      int fd = ::open(server_->data_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0) {
        if (::syncfs(fd) != 0 && st.ok()) st = Status::IOError(std::string("syncfs: ") + std::strerror(errno));
        ::close(fd);
      }
      std::unique_lock<std::mutex> g(mu_);
      sync_status = st;
      frozen_ = true;
      cv_.notify_all();
      logging::Warn("backup", "writes frozen for a snapshot", {{"max_seconds", seconds}});
      bool thawed = cv_.wait_for(g, std::chrono::seconds(seconds), [this] { return thaw_; });
      frozen_ = false;
      logging::Info("backup", thawed ? "writes thawed" : "writes thawed by themselves: the freeze's time ran out",
                    {{"max_seconds", seconds}});
    });
  });
  bool ok = cv_.wait_for(l, std::chrono::seconds(30), [this] { return frozen_; });
  if (!ok) return rb.Error("ERR the writer did not reach a barrier within 30 s; writes are not frozen");
  if (!sync_status.ok()) {
    thaw_ = true;
    cv_.notify_all();
    return rb.Error("ERR frozen, but syncing the data failed (" + sync_status.message() + "); thawed again");
  }
  rb.Ok();
}

void BackupService::Thaw() {
  {
    std::lock_guard<std::mutex> l(mu_);
    thaw_ = true;
  }
  cv_.notify_all();
  if (freezer_.joinable()) freezer_.join();
}

void BackupService::Handle(const std::vector<std::string>& a, resp::ReplyBuilder& rb) {
  std::string sub = commands::ToLower(a[1]);
  auto find = [&](const std::string& id) -> std::shared_ptr<backup::CheckpointLease> {
    auto it = leases_.find(id);
    if (it == leases_.end()) return nullptr;
    it->second.last_used_ms = WallMs();
    return it->second.lease;
  };
  if (sub == "open") return Open(a, rb);
  if (sub == "read" && a.size() == 6) {
    int64_t off, n;
    if (!commands::ParseInt64(a[4], &off) || !commands::ParseInt64(a[5], &n) || off < 0 || n < 0 ||
        static_cast<size_t>(n) > kMaxRead) {
      return rb.Error("ERR BACKUP READ needs an offset and a count of at most 64 MiB");
    }
    std::shared_ptr<backup::CheckpointLease> lease;
    {
      std::lock_guard<std::mutex> l(mu_);
      lease = find(a[2]);
    }
    if (lease == nullptr) return rb.Error("ERR no checkpoint lease " + a[2] + " (closed, or idle for two minutes)");
    std::string data;
    Status st = lease->Read(a[3], static_cast<uint64_t>(off), static_cast<size_t>(n), &data);
    if (!st.ok()) return rb.Error("ERR " + st.message());
    return rb.Bulk(data);
  }
  std::lock_guard<std::mutex> l(mu_);
  if (sub == "digest" && a.size() == 3) {
    auto lease = find(a[2]);
    if (lease == nullptr) return rb.Error("ERR no checkpoint lease " + a[2] + " (closed, or idle for two minutes)");
    std::string d;
    Status st;
    if (!lease->DigestReady(&d, &st)) return rb.Null();
    if (!st.ok()) return rb.Error("ERR digest failed: " + st.message());
    return rb.Bulk(d);
  }
  if (sub == "close" && a.size() == 3) {
    if (leases_.erase(a[2]) == 0) return rb.Error("ERR no checkpoint lease " + a[2]);
    return rb.Ok();
  }
  if (sub == "freeze" && a.size() <= 3) {
    int64_t secs = 60;
    const int64_t max_secs = server_->config().GetInt("backup-freeze-max-seconds");
    if (a.size() == 3 && (!commands::ParseInt64(a[2], &secs) || secs < 1 || secs > max_secs)) {
      return rb.Error("ERR BACKUP FREEZE takes the most seconds to hold writes, 1 to " + std::to_string(max_secs) +
                      " (backup-freeze-max-seconds)");
    }
    mu_.unlock();
    Freeze(secs, rb);
    mu_.lock();
    return;
  }
  if (sub == "thaw" && a.size() == 2) {
    bool was = frozen_;
    mu_.unlock();
    Thaw();
    mu_.lock();
    if (!was) return rb.Error("ERR writes are not frozen");
    return rb.Ok();
  }
  if (sub == "run" && a.size() == 2) {
    if (server_->config().GetString("backup-repo").empty()) {
      return rb.Error("ERR no backup-repo is configured; set it (or run `levee backup create --repo URL`)");
    }
    if (running_) return rb.Error("ERR a backup is already running");
    run_now_ = true;
    cv_.notify_all();
    return rb.SimpleString("Backup started");
  }
  if (sub == "status" && a.size() == 2) {
    rb.ArrayHeader(16);
    rb.Bulk("running");
    rb.Integer(running_ ? 1 : 0);
    rb.Bulk("frozen");
    rb.Integer(frozen_ ? 1 : 0);
    rb.Bulk("leases");
    rb.Integer(static_cast<int64_t>(leases_.size()));
    rb.Bulk("backups");
    rb.Integer(static_cast<int64_t>(backups_total_.load()));
    rb.Bulk("failures");
    rb.Integer(static_cast<int64_t>(failures_total_.load()));
    rb.Bulk("last_success_ms");
    rb.Integer(static_cast<int64_t>(last_success_s_.load() * 1000));
    rb.Bulk("last_id");
    rb.Bulk(last_id_);
    rb.Bulk("last_error");
    rb.Bulk(last_error_);
    return;
  }
  rb.Error("ERR unknown BACKUP subcommand or wrong number of arguments for '" + a[1] +
           "'. Try OPEN, READ, DIGEST, CLOSE, FREEZE, THAW, RUN or STATUS.");
}

void BackupService::RegisterMetrics(observe::Registry* reg) {
  using observe::Family;
  using observe::Type;
  auto add = [reg](std::string name, std::string help, Type type, std::function<double()> read) {
    reg->Register(Family{std::move(name), std::move(help), type, {},
                         [read = std::move(read)](observe::SampleWriter& w) { w.Value({}, read()); }});
  };
  add("levee_backup_last_success_timestamp_seconds", "When the last server-side backup finished (0: none yet).",
      Type::kGauge, [this] { return last_success_s_.load(); });
  add("levee_backup_last_failure_timestamp_seconds", "When the last server-side backup failed (0: none yet).",
      Type::kGauge, [this] { return last_failure_s_.load(); });
  add("levee_backup_duration_seconds", "How long the last successful server-side backup took.", Type::kGauge,
      [this] { return last_duration_s_.load(); });
  add("levee_backup_bytes_total", "Bytes server-side backups stored in the repository (after compression).",
      Type::kCounter, [this] { return static_cast<double>(bytes_total_.load()); });
  add("levee_backup_new_bytes", "Bytes of new objects the last server-side backup uploaded (before compression).",
      Type::kGauge, [this] { return static_cast<double>(last_new_bytes_.load()); });
  add("levee_backup_barrier_seconds", "How long the last server-side backup held writes at its barrier.", Type::kGauge,
      [this] { return static_cast<double>(last_barrier_us_.load()) / 1e6; });
  add("levee_backup_verify_last_success_timestamp_seconds", "When the last scheduled verification passed (0: none yet).",
      Type::kGauge, [this] { return verify_success_s_.load(); });
  add("levee_backup_verify_last_failure_timestamp_seconds", "When the last scheduled verification failed (0: none yet).",
      Type::kGauge, [this] { return verify_failure_s_.load(); });
  add("levee_backup_failures_total", "Server-side backups that failed.", Type::kCounter,
      [this] { return static_cast<double>(failures_total_.load()); });
  add("levee_backup_running", "1 while a server-side backup or verification runs.", Type::kGauge, [this] {
    std::lock_guard<std::mutex> l(mu_);
    return running_ ? 1.0 : 0.0;
  });
  add("levee_backup_schedule_seconds",
      "The backup-schedule interval in seconds (0: this server runs no scheduled backups); alerts compare backup age with it.",
      Type::kGauge, [this] {
        Config& c = server_->config();
        int64_t ms = 0;
        if (c.GetString("backup-repo").empty() || !ScheduledHere() ||
            !backup::ParseInterval(c.GetString("backup-schedule"), &ms)) {
          return 0.0;
        }
        return static_cast<double>(ms) / 1000;
      });
  add("levee_wal_archive_enabled", "1 where this server archives its log (backup-wal-archive, and its role runs the schedule).",
      Type::kGauge, [this] { return ArchivingHere() ? 1.0 : 0.0; });
  add("levee_wal_archive_interval_seconds", "backup-wal-archive-interval in seconds (0: not archiving here).",
      Type::kGauge, [this] {
        int64_t ms = 0;
        if (!ArchivingHere() || !backup::ParseInterval(server_->config().GetString("backup-wal-archive-interval"), &ms)) {
          return 0.0;
        }
        return static_cast<double>(ms) / 1000;
      });
  add("levee_wal_archive_last_sequence", "The last log sequence in the archive.", Type::kGauge,
      [this] { return static_cast<double>(archive_last_sequence_.load()); });
  add("levee_wal_archive_lag_seconds",
      "How far the archive is behind the log: 0 when it holds every record, else seconds since it last held every "
      "record written before a pass began.",
      Type::kGauge, [this] {
        // Not before the log is open (HTTP answers during recovery).
        if (!server_->ready() || !ArchivingHere() || archive_last_sequence_.load() >= server_->log().last_sequence()) {
          return 0.0;
        }
        return std::max(0.0, static_cast<double>(WallMs()) / 1000 - archive_caught_up_s_.load());
      });
  add("levee_wal_archive_last_success_timestamp_seconds", "When the last archiving pass succeeded (0: none yet).",
      Type::kGauge, [this] { return archive_success_s_.load(); });
  add("levee_wal_archive_failures_total", "Archiving passes that failed (retried next interval).", Type::kCounter,
      [this] { return static_cast<double>(archive_failures_.load()); });
  add("levee_wal_archive_gaps_total",
      "Times the log was trimmed before the archive had it: point-in-time restores cannot cross such a gap.",
      Type::kCounter, [this] { return static_cast<double>(archive_gaps_.load()); });
  add("levee_wal_archive_bytes_total", "Log bytes archived (before compression).", Type::kCounter,
      [this] { return static_cast<double>(archive_bytes_.load()); });
  add("levee_backup_frozen", "1 while BACKUP FREEZE holds writes.", Type::kGauge, [this] {
    std::lock_guard<std::mutex> l(mu_);
    return frozen_ ? 1.0 : 0.0;
  });
}

}  // namespace levee::server
