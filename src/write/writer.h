// Writer: the one thread that changes data.
//
// Io threads hand it WriteJobs (one or more consecutive write commands of one
// client, or an EXEC). It takes every job queued at once as a group, runs the
// commands in order against a WriteGroup (so later commands see earlier
// ones), gives each command that changed something the next log sequence,
// appends the group's records to the write-ahead log in one write, fsyncs
// when the policy says so, applies the group to LevelDB as one batch, and
// only then hands the replies back. No client hears OK before its write is
// in the log (and, with fsync always, on disk).
//
// Between groups (and at least every 100 ms) it deletes expired keys, as
// logged deletes, and trims log segments LevelDB no longer needs.
//
// Threads: Submit() from any thread; everything else is the writer's own.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "common/status.h"
#include "observe/metrics.h"
#include "wal/record.h"

namespace levee::storage {
class Engine;
class KeyCounter;
}
namespace levee::wal {
class Log;
}

namespace levee::write {

enum class FsyncPolicy { kAlways, kEverySec, kNo };
bool ParseFsyncPolicy(const std::string& s, FsyncPolicy* p);

struct WriteJob {
  std::shared_ptr<commands::ClientState> client;
  std::vector<std::vector<std::string>> commands;
  std::vector<const commands::Spec*> specs;  // commands[i]'s spec, looked up by the io thread
  std::string reply;  // filled by the writer
  // Replies (begin, end in reply) of commands that wrote sync-class keys,
  // and the last sequence among them: the job is held until replicas ack it.
  std::vector<std::pair<size_t, size_t>> sync_replies;
  uint64_t sync_sequence = 0;
  // Called on the writer thread once the replies are final; it must hand the
  // job back to the client's own thread and return quickly.
  std::function<void(std::unique_ptr<WriteJob>)> done;
};

// Records received from a primary, applied by a replica's writer with the
// primary's sequences.
struct ReplicatedBatch {
  std::string frames;  // as received; appended to this server's log unchanged
  std::vector<wal::Record> records;
  // Called on the writer thread when applied (or not): must return quickly.
  std::function<void(const Status&)> done;
};

// What the writer needs from replication (implemented by repl::Manager).
class ReplicationHooks {
 public:
  virtual ~ReplicationHooks() = default;
  // Records through `last` are in the log (replication senders may read them).
  virtual void OnAppended(uint64_t last) = 0;
  // Lowest sequence replicas still need from the log (UINT64_MAX: none).
  virtual uint64_t RetainFrom() = 0;
  // min-replicas-to-write: the error for a write, or empty when it may go.
  virtual std::string WriteRefusal() = 0;
  // Whether a write to key must be acked by replicas before its reply.
  virtual bool IsSyncKey(std::string_view key) = 0;
  // Takes a finished job and calls its done() once replicas acked
  // job->sync_sequence, or the sync timeout passed.
  virtual void HoldForAcks(std::unique_ptr<WriteJob> job) = 0;
  // WAIT: replies with the number of replicas that acked `sequence`, once
  // `replicas` have or timeout_ms passed (0: no limit).
  virtual void HoldForWait(std::unique_ptr<WriteJob> job, uint64_t sequence, int64_t replicas,
                           int64_t timeout_ms) = 0;
};

struct WriterStats {
  observe::Histogram group_commands{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}};
  observe::Histogram commit_seconds{observe::LatencyBounds()};  // log append + fsync + LevelDB write
  observe::Histogram fsync_seconds{observe::LatencyBounds()};
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> log_bytes{0};
  std::atomic<uint64_t> fsyncs{0};
  std::atomic<uint64_t> write_errors{0};
  std::atomic<uint64_t> expired_keys{0};
  std::atomic<int64_t> last_group_ms{0};  // wall time the last loop iteration finished
};

class Writer {
 public:
  struct Options {
    FsyncPolicy fsync = FsyncPolicy::kEverySec;
    size_t max_group = 4096;
    size_t expire_keys_per_cycle = 500;
    size_t keep_segments = 4;
    uint64_t min_free_disk_bytes = 64ull << 20;
    std::string data_dir;  // where free space is checked
  };

  Writer(storage::Engine* engine, wal::Log* log, commands::Services* services, Options options);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Replays log records LevelDB has not applied. Call once, before Start().
  Status Recover(uint64_t* replayed);
  void Start();
  // Finishes queued jobs, syncs the log and joins the threads.
  void Stop();
  void Submit(std::unique_ptr<WriteJob> job);
  // A replica's stream: applied in order, before queued client jobs.
  void SubmitReplicated(std::unique_ptr<ReplicatedBatch> batch);
  // Runs fn on the writer thread between groups (nothing is being written
  // then) and returns when it has run.
  void RunOnWriter(const std::function<void()>& fn);

  // A replica's writer refuses client writes (READONLY), applies only its
  // primary's records, and leaves expiry to the primary's logged deletes.
  void set_replica_mode(bool on) { replica_mode_.store(on); }
  bool replica_mode() const { return replica_mode_.load(); }
  void set_hooks(ReplicationHooks* h) { hooks_ = h; }
  // Sequence of the newest record in the log (or applied, if later).
  uint64_t last_sequence() const { return last_sequence_.load(std::memory_order_acquire); }

  // Blind writes are counted by this counter (set before Start).
  void set_counter(storage::KeyCounter* c) { counter_ = c; }
  void set_fsync(FsyncPolicy p) { fsync_.store(p, std::memory_order_release); }
  void set_max_group(size_t n) { max_group_.store(n); }
  void set_expire_keys_per_cycle(size_t n) { expire_per_cycle_.store(n); }
  void set_keep_segments(size_t n) { keep_segments_.store(n); }
  // The log archive still needs records from this sequence on (UINT64_MAX:
  // none); trimming keeps them while the log is under max_bytes.
  void set_archive_retain(uint64_t from, uint64_t max_bytes) {
    archive_max_bytes_.store(max_bytes);
    archive_retain_from_.store(from);
  }
  // min-free-disk-mb. On a volume no larger than twice n, a quarter of the
  // volume is kept free instead (with a warning): n as given would refuse
  // every write there.
  void set_min_free_disk_bytes(uint64_t n);

  const WriterStats& stats() const { return stats_; }
  uint64_t queued() const;
  // A sticky failure that stops all writes (empty when healthy).
  std::string failure() const;

 private:
  void Run();
  void RunSyncer();
  Status SyncLogAndBlobs();
  void ProcessGroup(std::vector<std::unique_ptr<WriteJob>>& jobs);
  void ApplyReplicated(ReplicatedBatch& batch);
  // Why spec may not run now (READONLY, NOREPLICAS), or empty.
  std::string Refusal(const commands::Spec& spec, const commands::ClientState& client);
  void Finish(std::unique_ptr<WriteJob> job);
  // Makes WATCHers of the keys these mutations change fail their EXEC.
  void TouchWatched(const std::vector<wal::Mutation>& mutations);
  void ExpireCycle(int64_t now_ms);
  void MaybeTrimLog();
  // Free bytes on the data directory's file system (UINT64_MAX: unknown).
  uint64_t FreeDiskBytes();
  void FailJobs(std::vector<std::unique_ptr<WriteJob>>& jobs, const std::string& error);
  void FailJob(WriteJob& job, const std::string& error);
  void SetFailure(const std::string& f);

  storage::Engine* engine_;
  storage::KeyCounter* counter_ = nullptr;
  wal::Log* log_;
  commands::Services* services_;
  const std::string data_dir_;
  std::atomic<FsyncPolicy> fsync_;
  std::atomic<size_t> max_group_, expire_per_cycle_, keep_segments_;
  std::atomic<uint64_t> archive_retain_from_{UINT64_MAX}, archive_max_bytes_{0};
  std::atomic<uint64_t> min_free_disk_;

  mutable std::mutex mu_;  // guards queue_, stopping_, failure_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WriteJob>> queue_;
  std::deque<std::unique_ptr<ReplicatedBatch>> repl_queue_;
  std::deque<std::function<void()>> barriers_;
  std::atomic<bool> replica_mode_{false};
  ReplicationHooks* hooks_ = nullptr;
  std::atomic<uint64_t> last_sequence_{0};
  bool stopping_ = false;
  std::string failure_;

  // Writer thread only.
  uint64_t next_sequence_ = 1;
  int64_t last_expire_ms_ = 0, last_trim_ms_ = 0;

  std::thread thread_, syncer_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool syncer_stop_ = false;
  WriterStats stats_;
};

}  // namespace levee::write
