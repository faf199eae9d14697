#include "write/writer.h"

#include <leveldb/db.h>
#include <sys/statvfs.h>

#include <pthread.h>

#include <chrono>

#include "commands/pubsub.h"
#include "common/clock.h"
#include "common/logging.h"
#include "commands/instrument.h"
#include "storage/engine.h"
#include "storage/key_counter.h"
#include "storage/write_group.h"
#include "wal/log.h"

namespace levee::write {
namespace {


// Replay commits every this many records, bounding the batch's memory.
constexpr int kReplayBatch = 1000;

}  // namespace

bool ParseFsyncPolicy(const std::string& s, FsyncPolicy* p) {
  if (s == "always") *p = FsyncPolicy::kAlways;
  else if (s == "everysec") *p = FsyncPolicy::kEverySec;
  else if (s == "no") *p = FsyncPolicy::kNo;
  else return false;
  return true;
}

Writer::Writer(storage::Engine* engine, wal::Log* log, commands::Services* services, Options o)
    : engine_(engine),
      log_(log),
      services_(services),
      data_dir_(o.data_dir),
      fsync_(o.fsync),
      max_group_(o.max_group),
      expire_per_cycle_(o.expire_keys_per_cycle),
      keep_segments_(o.keep_segments) {
  set_min_free_disk_bytes(o.min_free_disk_bytes);
}

void Writer::set_min_free_disk_bytes(uint64_t n) {
  struct statvfs s;
  if (n > 0 && ::statvfs(data_dir_.c_str(), &s) == 0) {
    const uint64_t total = static_cast<uint64_t>(s.f_blocks) * s.f_frsize;
    if (total > 0 && n * 2 >= total) {
      const uint64_t kept = total / 4;
      logging::Warn("disk",
                    "min-free-disk-mb is at least half of the data volume: keeping a quarter of it free instead, "
                    "or no write could ever be taken; give levee a larger volume or lower min-free-disk-mb",
                    {{"volume_mb", total >> 20}, {"min_free_disk_mb", n >> 20}, {"reserve_mb", kept >> 20}});
      n = kept;
    }
  }
  min_free_disk_.store(n);
}

Writer::~Writer() { Stop(); }

Status Writer::Recover(uint64_t* replayed) {
  *replayed = 0;
  uint64_t applied = engine_->applied_sequence();
  uint64_t first = log_->first_sequence();
  uint64_t last = log_->last_sequence();
  if (last > applied && first > applied + 1) {
    return Status::Corruption("the write-ahead log starts at sequence " + std::to_string(first) +
                              " but LevelDB has applied only through " + std::to_string(applied) +
                              ": records in between are missing; restore from a backup");
  }
  storage::WriteGroup group(engine_);
  uint64_t expect = applied + 1;
  int pending = 0;
  Status inner;
  Status st = log_->ReadFrom(applied, [&](wal::Record&& rec) {
    if (rec.sequence != expect) {
      inner = Status::Corruption("log record " + std::to_string(rec.sequence) + " found where " +
                                 std::to_string(expect) + " was expected");
      return false;
    }
    for (const auto& m : rec.mutations) {
      inner = group.Apply(m);
      if (!inner.ok()) return false;
    }
    expect++;
    (*replayed)++;
    if (++pending >= kReplayBatch) {
      inner = group.Commit(rec.sequence, false);
      pending = 0;
      if (!inner.ok()) return false;
    }
    return true;
  });
  LEVEE_RETURN_IF_ERROR(st);
  LEVEE_RETURN_IF_ERROR(inner);
  if (pending > 0) LEVEE_RETURN_IF_ERROR(group.Commit(expect - 1, false));
  applied = engine_->applied_sequence();
  if (log_->last_sequence() < applied) {
    // LevelDB is ahead of the log (its tail was lost with fsync no/everysec
    // while LevelDB's survived): everything in the log is applied. Make that
    // durable, then start a fresh log after `applied` so sequences stay gap-free.
    storage::WriteGroup empty(engine_);
    LEVEE_RETURN_IF_ERROR(empty.Commit(applied, /*sync=*/true));
    LEVEE_RETURN_IF_ERROR(log_->RemoveAll());
    logging::Warn("wal", "the log ended before LevelDB's applied sequence; started a new log after it",
                  {{"applied_sequence", applied}, {"log_last_sequence", log_->last_sequence()}});
  }
  next_sequence_ = std::max(applied, log_->last_sequence()) + 1;
  last_sequence_ = next_sequence_ - 1;
  return Status::OK();
}

void Writer::Start() {
  last_expire_ms_ = last_trim_ms_ = NowMs();
  stats_.last_group_ms = NowMs();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-writer");  // visible in top -H, perf, gdb
    Run();
  });
  syncer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-syncer");
    RunSyncer();
  });
}

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    syncer_stop_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  (void)SyncLogAndBlobs();
  // Let the counter finish, then record exact counts durably: a clean stop
  // needs no recount at the next start.
  if (counter_ != nullptr) {
    counter_->Stop();
    storage::WriteGroup final_meta(engine_);
    Status st = final_meta.Commit(engine_->applied_sequence(), /*sync=*/true);
    if (!st.ok()) logging::Warn("writer", "could not record the final key counts", {{"error", st.ToString()}});
    counter_ = nullptr;
  }
}

void Writer::Submit(std::unique_ptr<WriteJob> job) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Writer::RunOnWriter(const std::function<void()>& fn) {
  std::mutex m;
  std::condition_variable cv;
  bool ran = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    barriers_.push_back([&] {
      fn();
      std::lock_guard<std::mutex> g(m);
      ran = true;
      cv.notify_all();
    });
  }
  cv_.notify_one();
  std::unique_lock<std::mutex> l(m);
  cv.wait(l, [&] { return ran; });
}

void Writer::SubmitReplicated(std::unique_ptr<ReplicatedBatch> batch) {
  {
    std::lock_guard<std::mutex> l(mu_);
    repl_queue_.push_back(std::move(batch));
  }
  cv_.notify_one();
}

uint64_t Writer::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size();
}

std::string Writer::failure() const {
  std::lock_guard<std::mutex> l(mu_);
  return failure_;
}

void Writer::SetFailure(const std::string& f) {
  logging::Log(logging::Severity::kCritical, "writer", f);
  std::lock_guard<std::mutex> l(mu_);
  failure_ = f;
}

void Writer::Run() {
  std::vector<std::unique_ptr<WriteJob>> jobs;
  std::deque<std::unique_ptr<ReplicatedBatch>> batches;
  std::deque<std::function<void()>> barriers;
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(100), [this] {
        return stopping_ || !queue_.empty() || !repl_queue_.empty() || !barriers_.empty();
      });
      if (stopping_ && queue_.empty() && repl_queue_.empty() && barriers_.empty()) break;
      batches.swap(repl_queue_);
      barriers.swap(barriers_);
      size_t n = std::min(queue_.size(), max_group_.load());
      for (size_t i = 0; i < n; i++) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (auto& fn : barriers) fn();
    barriers.clear();
    for (auto& b : batches) ApplyReplicated(*b);
    batches.clear();
    ProcessGroup(jobs);
    jobs.clear();
    MaybeTrimLog();
    stats_.last_group_ms = NowMs();
  }
}

Status Writer::SyncLogAndBlobs() {
  // Blob files first: a value must be durable before the log (and then
  // LevelDB) can refer to it as durable.
  if (engine_->blobs()->has_unsynced()) LEVEE_RETURN_IF_ERROR(engine_->blobs()->Sync());
  if (!log_->has_unsynced()) return Status::OK();
  return log_->Sync();
}

void Writer::RunSyncer() {
  std::unique_lock<std::mutex> l(sync_mu_);
  while (!syncer_stop_) {
    sync_cv_.wait_for(l, std::chrono::seconds(1), [this] { return syncer_stop_; });
    if (syncer_stop_) break;
    if (fsync_.load() != FsyncPolicy::kEverySec || (!log_->has_unsynced() && !engine_->blobs()->has_unsynced()) ||
        !failure().empty()) {
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    Status st = SyncLogAndBlobs();
    if (!st.ok()) {
      // Not retried: after a failed fsync the kernel may have dropped the
      // dirty pages, and a later fsync that succeeds says nothing about
      // them (PostgreSQL's "fsyncgate"). Stop acknowledging writes.
      SetFailure("background fsync of the write-ahead log failed (" + st.message() +
                 "); writes are refused until levee restarts, and writes acknowledged since the last good sync "
                 "(up to about a second of them) may be lost: check the disk, then restart levee, which replays "
                 "its log");
      continue;
    }
    stats_.fsyncs++;
    stats_.fsync_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

uint64_t Writer::FreeDiskBytes() {
  struct statvfs s;
  if (::statvfs(data_dir_.c_str(), &s) != 0) return UINT64_MAX;  // can't tell: the write itself will find out
  return static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
}

namespace {
// Whether every command of job only removes data (DEL, UNLINK, FLUSHALL...):
// those may use the free-disk reserve, which is there so space can be freed.
bool OnlyFreesSpace(const WriteJob& job) {
  for (const commands::Spec* spec : job.specs) {
    if (!(spec->flags & commands::kFreesSpace)) return false;
  }
  return !job.specs.empty();
}
}  // namespace

void Writer::FailJobs(std::vector<std::unique_ptr<WriteJob>>& jobs, const std::string& error) {
  for (auto& job : jobs) FailJob(*job, error);
}

void Writer::FailJob(WriteJob& job, const std::string& error) {
  job.reply.clear();
  job.sync_replies.clear();
  job.sync_sequence = 0;
  job.client->wait_pending = false;
  resp::ReplyBuilder rb(&job.reply, job.client->protocol);
  for (size_t i = 0; i < job.commands.size(); i++) rb.Error("ERR " + error);
  // A failed EXEC still ends the transaction.
  if (job.client->in_multi) {
    job.client->in_multi = false;
    job.client->queued.clear();
    job.client->queued_count = 0;
    services_->clients().UnwatchAll(job.client.get());
  }
  stats_.write_errors += job.commands.size();
}

void Writer::ProcessGroup(std::vector<std::unique_ptr<WriteJob>>& jobs) {
  int64_t now = NowMs();
  std::string failure = this->failure();
  // Expiry first, as its own record and batch: the client group below then
  // reads its result from LevelDB, and sequences stay in append order. Not
  // while writes are refused (min-replicas-to-write unmet): expired keys
  // already read as absent, and a primary fenced or just promoted must log
  // nothing a replica ahead of it lacks (it could not take that replica's
  // records then: docs/formats/replication.md, backfill).
  if (failure.empty() && !replica_mode_.load() && (now - last_expire_ms_ >= 100 || jobs.empty())) {
    if (hooks_ == nullptr || hooks_->WriteRefusal().empty()) ExpireCycle(now);
    last_expire_ms_ = now;
  }
  if (jobs.empty()) return;

  std::string framed;
  const uint64_t first_seq = next_sequence_;
  storage::WriteGroup group(engine_, counter_);
  const uint64_t free_bytes = FreeDiskBytes();
  const uint64_t reserve = min_free_disk_.load();
  std::string disk_why;
  if (reserve > 0 && free_bytes < reserve) {
    disk_why = "disk full: " + std::to_string(free_bytes >> 20) + " MiB free in " + data_dir_ +
               ", below min-free-disk-mb (" + std::to_string(reserve >> 20) +
               "); the write was not applied. Free space (DEL, UNLINK and FLUSHALL still run) and retry";
  }
  if (!failure.empty()) {
    FailJobs(jobs, failure);
  } else {
    wal::Record rec;
    for (auto& job : jobs) {
      if (!disk_why.empty() && !OnlyFreesSpace(*job)) {
        FailJob(*job, disk_why);
        continue;
      }
      resp::ReplyBuilder rb(&job->reply, job->client->protocol);
      for (size_t i = 0; i < job->commands.size(); i++) {
        std::vector<std::string>& args = job->commands[i];
        const commands::Spec* spec = job->specs[i];
        rec.mutations.clear();
        const size_t before = job->reply.size();
        std::string refusal = Refusal(*spec, *job->client);
        if (!refusal.empty()) {
          rb.Error(refusal);
          commands::RecordRejected(*services_, spec, std::string_view(job->reply).substr(before));
          continue;
        }
        group.set_recording(&rec.mutations);
        commands::CommandContext ctx{job->client, *services_, group, &group, rb, now};
        auto start = std::chrono::steady_clock::now();
        spec->handler(ctx, args);
        commands::RecordCommand(*services_, *spec, args, *job->client, start, std::string_view(job->reply).substr(before));
        group.set_recording(nullptr);
        stats_.commands++;
        if (rec.mutations.empty()) continue;
        rec.sequence = next_sequence_++;
        rec.time_ms = now;
        wal::AppendFramed(rec, &framed);
        stats_.records++;
        job->client->last_write_sequence = rec.sequence;
        if (hooks_ != nullptr) {
          for (const auto& m : rec.mutations) {
            if (!m.changes_data()) continue;
            if (m.kind == wal::Mutation::Kind::kFlushAll || hooks_->IsSyncKey(m.key)) {
              job->sync_replies.emplace_back(before, job->reply.size());
              job->sync_sequence = rec.sequence;
              break;
            }
          }
        }
        TouchWatched(rec.mutations);
      }
    }
  }

  size_t group_commands = 0;
  for (const auto& job : jobs) group_commands += job->commands.size();
  stats_.group_commands.Observe(static_cast<double>(group_commands));
  // What the group will take on disk: levee's log, then LevelDB's own log.
  // Refused here, before anything is logged, a write is certainly not
  // applied; past this point a full disk leaves it "may or may not".
  const uint64_t needed = framed.size() + group.ApproximateBytes() + (1u << 20);
  if (!framed.empty() && free_bytes != UINT64_MAX && needed > free_bytes) {
    group.Reset();
    (void)group.TakePublished();
    next_sequence_ = first_seq;
    FailJobs(jobs, "disk full: this write needs about " + std::to_string((needed >> 20) + 1) + " MiB and " +
                       std::to_string(free_bytes >> 20) + " MiB are free in " + data_dir_ +
                       " (FLUSHALL deletes every key one by one in LevelDB); the write was not applied, free space "
                       "and retry");
    framed.clear();
  }
  if (!framed.empty()) {
    auto commit_start = std::chrono::steady_clock::now();
    const uint64_t last_seq = next_sequence_ - 1;
    Status st = log_->Append(framed, first_seq, last_seq);
    if (st.ok() && fsync_.load() == FsyncPolicy::kAlways) {
      auto t0 = std::chrono::steady_clock::now();
      st = SyncLogAndBlobs();
      stats_.fsyncs++;
      stats_.fsync_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!st.ok()) {
        SetFailure("fsync of the write-ahead log failed (" + st.message() +
                   "); writes are refused until levee restarts. Writes answered with this error may or may not "
                   "have been applied");
      }
    }
    if (!st.ok()) {
      group.Reset();
      (void)group.TakePublished();  // not logged: not delivered either
      next_sequence_ = first_seq;
      std::string msg;
      if (st.IsNoSpace()) {
        msg = "disk full: " + st.message() + "; the write was not applied, free space and retry";
      } else {
        logging::Error("wal", "log append failed", {{"error", st.ToString()}});
        msg = "write-ahead log: " + st.message();
      }
      std::string sticky = this->failure();
      FailJobs(jobs, sticky.empty() ? msg : sticky);
    } else {
      stats_.log_bytes += framed.size();
      last_sequence_.store(last_seq, std::memory_order_release);
      if (hooks_ != nullptr) hooks_->OnAppended(last_seq);
      st = group.Commit(last_seq, false);
      stats_.commit_seconds.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count());
      if (!st.ok()) {
        SetFailure("LevelDB write failed after the write was logged (" + st.message() +
                   "): it may or may not have been applied; writes are refused until levee restarts, which "
                   "replays the log (keep min-free-disk-mb above 0 so a full disk is caught before this)");
        FailJobs(jobs, this->failure());
      }
    }
  }
  // After the commit: a subscriber reading what a message announces sees
  // the writes before it. (A failed append dropped them above.)
  for (const auto& [channel, message] : group.TakePublished()) services_->pubsub().Publish(channel, message);
  stats_.groups++;
  for (auto& job : jobs) Finish(std::move(job));
}

void Writer::TouchWatched(const std::vector<wal::Mutation>& mutations) {
  // WATCH runs on this thread too, so registrations and these touches are
  // ordered: a watcher sees every write after its WATCH.
  if (!services_->clients().any_watched()) return;
  for (const auto& m : mutations) {
    if (!m.changes_data()) continue;
    if (m.kind == wal::Mutation::Kind::kFlushAll) services_->clients().TouchAll();
    else services_->clients().TouchKey(m.key);
  }
}

void Writer::Finish(std::unique_ptr<WriteJob> job) {
  commands::ClientState& c = *job->client;
  if (c.wait_pending) {
    c.wait_pending = false;
    if (hooks_ != nullptr) {
      hooks_->HoldForWait(std::move(job), c.last_write_sequence, c.wait_replicas, c.wait_timeout_ms);
      return;
    }
    resp::ReplyBuilder(&job->reply, c.protocol).Integer(0);
  }
  if (hooks_ != nullptr && job->sync_sequence != 0) {
    hooks_->HoldForAcks(std::move(job));
    return;
  }
  auto done = std::move(job->done);
  done(std::move(job));
}

std::string Writer::Refusal(const commands::Spec& spec, const commands::ClientState& client) {
  bool writes = spec.flags & commands::kWrite;
  if (!writes && spec.name == "exec") {
    // A transaction writes if any queued command does.
    for (const auto& q : client.queued) {
      const commands::Spec* s = services_->table().Find(q[0]);
      if (s != nullptr && (s->flags & commands::kWrite)) writes = true;
    }
  }
  if (!writes) return "";
  if (replica_mode_.load()) return "READONLY You can't write against a read only replica.";
  if (hooks_ != nullptr) return hooks_->WriteRefusal();
  return "";
}

void Writer::ApplyReplicated(ReplicatedBatch& b) {
  Status st;
  if (b.records.empty()) {
    b.done(Status::OK());
    return;
  }
  const uint64_t first = b.records.front().sequence, last = b.records.back().sequence;
  if (first != next_sequence_) {
    st = Status::InvalidArgument("replication stream sent sequence " + std::to_string(first) + ", expected " +
                                 std::to_string(next_sequence_));
  } else if (std::string f = failure(); !f.empty()) {
    st = Status::IOError(f);
  } else {
    st = log_->Append(b.frames, first, last);
    if (st.ok() && fsync_.load() == FsyncPolicy::kAlways) {
      st = SyncLogAndBlobs();
      stats_.fsyncs++;
      if (!st.ok()) {
        SetFailure("fsync of the write-ahead log failed applying replicated records (" + st.message() +
                   "); writes are refused until levee restarts, which replays its log");
      }
    }
    if (st.ok()) {
      stats_.log_bytes += b.frames.size();
      stats_.records += b.records.size();
      next_sequence_ = last + 1;
      last_sequence_.store(last, std::memory_order_release);
      storage::WriteGroup group(engine_, counter_);
      for (const auto& rec : b.records) {
        for (const auto& m : rec.mutations) {
          if (!st.ok()) break;
          st = group.Apply(m);
        }
        TouchWatched(rec.mutations);
      }
      if (st.ok()) st = group.Commit(last, false);
      if (!st.ok()) {
        SetFailure("LevelDB write failed applying replicated records (" + st.message() +
                   "); restart levee, which replays its log");
      } else {
        if (hooks_ != nullptr) hooks_->OnAppended(last);
        for (const auto& rec : b.records) {
          for (const auto& m : rec.mutations) {
            if (m.kind == wal::Mutation::Kind::kPublish) services_->pubsub().Publish(m.key, m.value);
          }
        }
      }
    }
  }
  b.done(st);
}

void Writer::ExpireCycle(int64_t now_ms) {
  auto it = engine_->NewIterator();
  storage::WriteGroup group(engine_);
  wal::Record rec;
  group.set_recording(&rec.mutations);
  size_t budget = expire_per_cycle_.load();
  size_t expired = 0;
  for (it->Seek(std::string(1, storage::kExpiryPrefix)); it->Valid() && budget > 0; it->Next(), budget--) {
    int64_t at;
    std::string_view key;
    std::string_view raw(it->key().data(), it->key().size());
    if (!storage::ParseExpiryKey(raw, &at, &key) || at > now_ms) break;
    storage::StoredValue v;
    bool found;
    if (!engine_->Get(key, &v, &found, /*resolve=*/false).ok()) break;
    // An entry whose key was since overwritten or deleted is stale: drop it.
    if (found && v.expire_at_ms == at) {
      bool deleted;
      if (!group.Delete(key, &deleted).ok()) break;
      expired++;
      if (services_->clients().any_watched()) services_->clients().TouchKey(key);
    }
    group.DeleteRaw(std::string(raw));
  }
  group.set_recording(nullptr);
  if (group.empty()) return;
  uint64_t seq = engine_->applied_sequence();
  if (!rec.mutations.empty()) {
    std::string out;
    rec.sequence = next_sequence_;
    rec.time_ms = now_ms;
    wal::AppendFramed(rec, &out);
    Status st = log_->Append(out, rec.sequence, rec.sequence);
    if (!st.ok()) {
      logging::Warn("expire", "could not log expired-key deletes; will retry", {{"error", st.ToString()}});
      return;
    }
    seq = next_sequence_++;
    last_sequence_.store(seq, std::memory_order_release);
    if (hooks_ != nullptr) hooks_->OnAppended(seq);
    stats_.records++;
    stats_.log_bytes += out.size();
  }
  Status st = group.Commit(seq, false);
  if (!st.ok()) {
    SetFailure("LevelDB write failed while expiring keys (" + st.message() + "); writes are refused until restart");
    return;
  }
  stats_.expired_keys += expired;
  services_->expired_keys() += expired;
}

void Writer::MaybeTrimLog() {
  int64_t now = NowMs();
  if (now - last_trim_ms_ < 1000) return;
  last_trim_ms_ = now;
  // LevelDB's closed logs first: the synced write below covers only the
  // log it writes now (storage/closed_logs.h).
  if (std::string f = engine_->env()->closed_logs().WaitAll(); !f.empty()) {
    // LevelDB's copy of some applied writes may not be durable: levee's log
    // is their only copy now. Keep all of it, and take no more writes.
    if (failure().empty()) {
      SetFailure("syncing a closed LevelDB log failed (" + f +
                 "); writes are refused and the write-ahead log is no longer trimmed until levee restarts, which "
                 "replays it");
    }
    return;
  }
  auto segs = log_->Segments();
  size_t keep = keep_segments_.load();
  if (segs.size() <= keep + 1) return;
  // Closed segments older than the newest `keep` closed ones, fully applied.
  uint64_t applied = engine_->applied_sequence();
  uint64_t through = segs[segs.size() - keep - 2].last_sequence;
  if (through > applied) through = applied;
  if (hooks_ != nullptr) {
    uint64_t need = hooks_->RetainFrom();
    if (need != UINT64_MAX && need <= through) through = need == 0 ? 0 : need - 1;
  }
  uint64_t archive_from = archive_retain_from_.load();
  if (archive_from != UINT64_MAX && log_->total_bytes() <= archive_max_bytes_.load() && archive_from <= through) {
    through = archive_from == 0 ? 0 : archive_from - 1;
  }
  if (through == 0) return;
  // LevelDB's own log is not synced: make it durable through `applied`
  // before the only other copy of those records goes.
  storage::WriteGroup empty(engine_);
  Status st = empty.Commit(applied, /*sync=*/true);
  if (st.ok()) st = log_->TrimThrough(through);
  if (!st.ok()) logging::Warn("wal", "log trim failed; will retry", {{"error", st.ToString()}});
}

}  // namespace levee::write
