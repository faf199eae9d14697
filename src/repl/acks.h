// AckTracker: the writes waiting for replicas. A WAIT is answered with the
// number of replicas that acknowledged its sequence once enough have, or at
// its timeout. A sync-class write (sync-replicas, sync-key-prefixes) is
// answered once sync-replicas replicas acknowledged it, or at
// sync-timeout-ms with the sync-timeout-policy: `fail` replaces the
// sync-class replies with an error, `degrade` answers them as they are.
//
// It does not know the links: an AckCounter says how many online replicas
// acknowledged a sequence, and the links' threads call OnAck when an ack
// arrives.
//
// Threads: the writer holds jobs (HoldForAcks, HoldForWait); link threads
// call OnAck; the replication cron calls Tick for deadlines; any thread may
// Configure or ask IsSyncKey. Released jobs' done() runs on the releasing
// thread, outside the tracker's lock. Lock order: the tracker's, then the
// counter's.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "observe/metrics.h"
#include "write/writer.h"

namespace levee::repl {

class AckCounter {
 public:
  virtual ~AckCounter() = default;
  // Online replicas that acknowledged `sequence` or later.
  virtual int64_t CountAcked(uint64_t sequence) = 0;
};

struct SyncSettings {
  int64_t replicas = 0;                // sync-replicas: 0, no sync-class writes
  int64_t timeout_ms = 1000;           // sync-timeout-ms
  bool fail = true;                    // sync-timeout-policy: fail (else degrade)
  std::vector<std::string> prefixes;   // sync-key-prefixes: empty, every key
};

struct AckStats {
  std::atomic<uint64_t> sync_writes{0};
  std::atomic<uint64_t> sync_timeouts{0};
  std::atomic<uint64_t> sync_degraded{0};
  observe::Histogram sync_wait_seconds{observe::LatencyBounds()};
};

class AckTracker {
 public:
  // `now_ms`: the clock deadlines are measured on (common/clock.h's NowMs).
  AckTracker(AckCounter* counter, std::function<int64_t()> now_ms);
  AckTracker(const AckTracker&) = delete;
  AckTracker& operator=(const AckTracker&) = delete;

  void Configure(SyncSettings s);
  // Whether a write to `key` is sync-class.
  bool IsSyncKey(std::string_view key);
  // A finished job whose sync-class replies must wait for
  // job->sync_sequence to be acknowledged. On a replica (which has no
  // replicas of its own to wait for) it is answered at once, as timed out.
  void HoldForAcks(std::unique_ptr<write::WriteJob> job, bool on_replica);
  // WAIT numreplicas timeout: timeout_ms 0 waits without limit.
  void HoldForWait(std::unique_ptr<write::WriteJob> job, uint64_t sequence, int64_t replicas, int64_t timeout_ms);
  // An ack arrived: releases the jobs now acknowledged.
  void OnAck();
  // Releases the jobs acknowledged and those past their deadline.
  void Tick();
  // Stopping: every held job is answered, as timed out.
  void ReleaseAll();
  size_t held();
  AckStats& stats() { return stats_; }

 private:
  struct Hold {
    std::unique_ptr<write::WriteJob> job;
    uint64_t sequence;
    int64_t replicas;
    int64_t deadline_ms;  // 0: none
    bool is_wait;
    int64_t start_ms;
  };
  void ReleaseReady(bool timeouts);
  void Release(Hold& h, bool timed_out);

  AckCounter* counter_;
  std::function<int64_t()> now_ms_;
  AckStats stats_;
  std::mutex mu_;  // guards holds_
  std::list<Hold> holds_;
  // Settings: the writer reads them for every key, so without mu_.
  std::atomic<int64_t> replicas_{0}, timeout_ms_{1000};
  std::atomic<bool> fail_{true};
  std::mutex prefixes_mu_;
  std::vector<std::string> prefixes_;
};

}  // namespace levee::repl
