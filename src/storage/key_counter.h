// KeyCounter: keeps the key and expiry counts exact without a read on the
// writer's path.
//
// A blind write (SET without NX/XX/GET/KEEPTTL, MSET, SETEX) of a key its
// group has not read does not know whether the key existed before. Looking
// that up on the writer cost two thirds of its time on a large data set
// (docs/benchmarks.md). Instead the group takes a LevelDB snapshot just
// before its batch is written and hands it, with those keys, to this
// thread, which looks each key up in the snapshot and corrects the counts.
//
// Threads: Enqueue from the writer; the counting thread is its own; the
// engine's counters are atomics.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace leveldb {
class Snapshot;
}

namespace levee::storage {

class Engine;

struct UnresolvedKey {
  std::string key;
  bool new_has_expiry = false;  // the value the group wrote carries an expiry
};

class KeyCounter {
 public:
  explicit KeyCounter(Engine* engine);
  ~KeyCounter();
  KeyCounter(const KeyCounter&) = delete;
  KeyCounter& operator=(const KeyCounter&) = delete;

  // Takes ownership of snapshot (released when resolved). sequence is the
  // group's last log sequence.
  void Enqueue(const leveldb::Snapshot* snapshot, uint64_t sequence, std::vector<UnresolvedKey> keys);
  // Counts every key in snapshot (taken at `sequence`, when the counts were
  // live_keys / live_expires) and corrects the counts by the difference.
  // For a start after a crash that left counts unresolved.
  void EnqueueRecount(const leveldb::Snapshot* snapshot, uint64_t sequence, uint64_t live_keys,
                      uint64_t live_expires);
  // Blocks until nothing is pending.
  void Drain() const;
  // Too much is pending: the writer resolves keys itself until it catches up,
  // bounding the queue's memory and how long snapshots pin old versions.
  bool overloaded() const { return pending_keys_.load(std::memory_order_relaxed) > kMaxPendingKeys; }
  static constexpr size_t kMaxPendingKeys = 256 * 1024;
  // Waits until every group up to sequence is resolved, or the timeout passes.
  bool WaitResolved(uint64_t sequence, int timeout_ms) const;
  void Stop();

 private:
  struct Batch {
    const leveldb::Snapshot* snapshot;
    uint64_t sequence;
    std::vector<UnresolvedKey> keys;
    bool recount = false;
    uint64_t live_keys = 0, live_expires = 0;
  };
  void Run();
  void Resolve(const Batch& b);
  void Recount(const Batch& b);
  void Push(Batch b);

  Engine* engine_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_, done_cv_;
  std::deque<Batch> queue_;
  bool busy_ = false;
  bool stop_ = false;
  uint64_t resolved_through_ = 0;  // guarded by mu_
  std::atomic<size_t> pending_keys_{0};
  std::thread thread_;
};

}  // namespace levee::storage
