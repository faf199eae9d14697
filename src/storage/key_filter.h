// KeyFilter: a Bloom filter over every key LevelDB holds, so that levee can
// tell that a key is absent without asking LevelDB.
//
// A GET of a key that does not exist (the cache-aside miss), SETNX/INCR of a
// new key and the key counter's "did this key exist?" question otherwise
// walk LevelDB's memtables and check a table's Bloom filter on every level
// under its DB mutex: about 2 µs of CPU, mostly cache misses. The filter
// answers "absent" from one 64-byte block (one cache miss) for all but about
// 1% of absent keys at 10 bits per key; "maybe present" sends the lookup to
// LevelDB as before. It never answers "absent" for a key that is present.
//
// How that holds:
//   - Every LevelDB write of the engine adds its keys before the write
//     (Engine::WriteAndInvalidate): a write acknowledged before a read
//     started is in the filter the read consults.
//   - Keys already on disk are added by a scan of a LevelDB snapshot on the
//     filter's own thread when the engine opens; until it ends the filter
//     answers "maybe" to everything. The scan's generation is installed
//     (under the exclusive lock) before the snapshot is taken and the writer
//     holds the shared lock from its adds to the end of its LevelDB write, so
//     every key is either in the snapshot or added to that generation.
//   - Deletes leave their bits (a deleted key reads "maybe"). When the keys
//     added since the last scan exceed its capacity (growth, or churn of
//     new keys) the filter is rebuilt by a new scan sized for twice the live
//     keys, while the old one keeps answering.
//   - FLUSHALL: the writer resets it after the flush has committed.
//
// Threads: MayContain from any thread; Add/Reset from the writer (one
// thread at a time); the scan on the filter's own thread (levee-keyscan).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace levee::storage {

// One generation's bits: 512-bit blocks, each key's bits in one block.
class BloomBits {
 public:
  BloomBits(uint64_t capacity_keys, int bits_per_key);
  BloomBits(const BloomBits&) = delete;
  BloomBits& operator=(const BloomBits&) = delete;

  static uint64_t Hash(std::string_view key);
  bool MayContain(uint64_t h) const;
  // Returns true when a bit was new (the key was not in the filter before).
  bool Add(uint64_t h);
  uint64_t capacity() const { return capacity_; }
  uint64_t added() const { return added_.load(std::memory_order_relaxed); }
  size_t bytes() const { return words_.size() * sizeof(uint64_t); }

 private:
  static constexpr int kWordsPerBlock = 8;
  // Calls fn(word, mask) for each of the key's bits; false from fn stops
  // (and is returned). Add's fn writes (the words are atomics).
  template <typename Fn>
  bool ForEachProbe(uint64_t h, Fn&& fn) const;
  const uint64_t capacity_;
  const int probes_;
  const uint64_t blocks_;
  std::vector<std::atomic<uint64_t>> words_;
  std::atomic<uint64_t> added_{0};  // adds that set a new bit: about the distinct keys added
};

class KeyFilter {
 public:
  // scan(add, stop) calls add for every data key in a LevelDB snapshot it
  // takes when called, returns false if stop() became true or it failed.
  // live_keys() estimates the keys now held (for sizing). The first scan
  // starts at once.
  using Scan = std::function<bool(const std::function<void(std::string_view)>& add,
                                  const std::function<bool()>& stop)>;
  KeyFilter(int bits_per_key, Scan scan, std::function<uint64_t()> live_keys);
  ~KeyFilter();  // stops and joins the scan
  KeyFilter(const KeyFilter&) = delete;
  KeyFilter& operator=(const KeyFilter&) = delete;

  // False only when no key equal to key was ever added since the filter's
  // serving generation was scanned (key absent).
  bool MayContain(std::string_view key) const;
  // Writer side: take this lock, Add the keys a LevelDB write puts, and
  // hold it until that write has finished (a scan's snapshot is then either
  // before the write or after the adds).
  std::shared_lock<std::shared_mutex> LockForWrite() const { return std::shared_lock<std::shared_mutex>(mu_); }
  void Add(std::string_view key);  // with LockForWrite's lock held
  // After a flush has committed (without the lock): forget every key but
  // `keep` (what the flush's batch put after its deletes), and any scan
  // underway, whose snapshot is older than the flush.
  void Reset(const std::vector<std::string_view>& keep);

  bool ready() const;
  size_t bytes() const;
  uint64_t capacity() const;
  uint64_t absent_answers() const { return absent_.load(std::memory_order_relaxed); }
  uint64_t scans_completed() const { return scans_.load(std::memory_order_relaxed); }

 private:
  void Run();
  uint64_t SizeFor(uint64_t live) const;

  const int bits_per_key_;
  const Scan scan_;
  const std::function<uint64_t()> live_keys_;
  mutable std::shared_mutex mu_;
  // Both change only under the exclusive lock. The scan keeps its own
  // reference to what it fills, so a Reset can drop building_ under it.
  std::shared_ptr<BloomBits> serving_;   // answers MayContain; null: not ready
  std::shared_ptr<BloomBits> building_;  // filled by the running scan
  std::atomic<uint64_t> epoch_{0};       // bumped by Reset: a scan started before it is dropped
  std::atomic<bool> rescan_asked_{false};
  std::mutex run_mu_;
  std::condition_variable run_cv_;
  bool stop_ = false, rescan_ = true;    // guarded by run_mu_
  std::atomic<bool> stopping_{false};
  mutable std::atomic<uint64_t> absent_{0};
  std::atomic<uint64_t> scans_{0};
  std::thread thread_;
};

}  // namespace levee::storage
