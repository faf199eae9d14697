// Engine: levee's one LevelDB, with the key layout of storage/encoding.h.
//
// Reads (Get, NewIterator, properties, counters) are thread-safe and take no
// lock of levee's: io threads call them directly. Write() is for the writer
// thread only; every batch it writes carries the AppliedMeta record, so the
// applied log sequence is exactly what LevelDB holds.
#pragma once

#include <leveldb/options.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/blob.h"
#include "storage/checkpoint.h"
#include "storage/corruption.h"
#include "storage/encoding.h"
#include "storage/key_filter.h"
#include "storage/row_cache.h"

namespace leveldb {
class Cache;
struct WriteOptions;
class DB;
class FilterPolicy;
class Iterator;
class Logger;
class WriteBatch;
class Status;
}  // namespace leveldb

namespace levee::storage {

struct EngineOptions {
  std::string path;  // LevelDB directory
  size_t block_cache_bytes = 128ull << 20;
  size_t write_buffer_bytes = 16ull << 20;
  int max_open_files = 1000;
  bool create_if_missing = true;
  // Values this large or larger go to blob files (0: none do).
  size_t blob_min_bytes = 1024;
  uint64_t blob_file_bytes = 64ull << 20;
  size_t blob_cache_bytes = 0;  // the blob value cache (0: none)
  size_t row_cache_bytes = 0;   // the row cache (storage/row_cache.h; 0: none)
  int key_filter_bits_per_key = 0;  // the key filter (storage/key_filter.h; 0: none)
};

class Engine {
 public:
  // Opens (or creates) the database. Fails with a message naming the path
  // and the cause: held by another process, corrupt, unreadable, or written
  // by a newer levee.
  static StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Looks up a user key. *found is false when it is absent (expiry is the
  // caller's business: the value carries it). A value in a blob file is read
  // unless resolve is false (then only its expiry and reference are set).
  Status Get(std::string_view user_key, StoredValue* value, bool* found, bool resolve = true) const;
  // A raw iterator over the whole LevelDB (all prefixes); verify: a full
  // pass (`levee check`) that leaves the block cache alone. Reads see one consistent snapshot; blob files its
  // values point at stay until it is destroyed (see OldestIterator).
  std::unique_ptr<leveldb::Iterator> NewIterator(bool verify = false) const;
  // Reads the payload of a value LevelDB holds as a blob reference (a no-op
  // for any other value).
  Status Resolve(std::string_view user_key, StoredValue* value, bool fill_cache = true) const {
    return ResolveIn(blobs_.get(), user_key, value, fill_cache);
  }
  // fill_cache false: see BlobFiles::Read (full passes).
  static Status ResolveIn(const BlobFiles* blobs, std::string_view user_key, StoredValue* value,
                          bool fill_cache = true);

  // Blob files (storage/blob.h).
  BlobFiles* blobs() const { return blobs_.get(); }
  size_t blob_min_bytes() const { return blob_min_bytes_.load(std::memory_order_relaxed); }
  void set_blob_min_bytes(size_t n) { blob_min_bytes_.store(n); }
  // Iterators from NewIterator are numbered; a blob file the collector
  // emptied at iterator number E is removed once the oldest live one is
  // newer than E.
  uint64_t iterator_epoch() const { return iter_epoch_.load(); }
  uint64_t oldest_iterator() const;  // UINT64_MAX: none live

  uint64_t applied_sequence() const { return applied_.load(std::memory_order_acquire); }
  // Keys and keys with an expiry: what the writer knows plus the counter's
  // corrections (storage/key_counter.h).
  uint64_t key_count() const { return Clamp(known_keys_.load() + adjust_keys_.load()); }
  uint64_t expires_count() const { return Clamp(known_expires_.load() + adjust_expires_.load()); }
  // The writer's part (writer thread only).
  int64_t known_keys() const { return known_keys_.load(std::memory_order_relaxed); }
  int64_t known_expires() const { return known_expires_.load(std::memory_order_relaxed); }
  // From the counter thread.
  void AdjustCounts(int64_t keys, int64_t expires) {
    adjust_keys_.fetch_add(keys);
    adjust_expires_.fetch_add(expires);
  }
  void set_counted_through(uint64_t s) { counted_through_.store(s, std::memory_order_release); }
  uint64_t counted_through() const { return counted_through_.load(std::memory_order_acquire); }
  // The persisted counts were not fully resolved when levee stopped (a crash
  // with counts pending): a recount is needed.
  bool counts_need_recount() const { return needs_recount_; }
  // A LevelDB property ("leveldb.stats", ...); empty if unknown.
  std::string Property(std::string_view name) const;
  // Sum of approximate on-disk sizes of all key ranges.
  uint64_t ApproximateSize() const;
  uint64_t block_cache_hits() const;
  uint64_t block_cache_misses() const;
  uint64_t block_cache_bytes() const;
  // LevelDB writes that took 1 ms or more: LevelDB delays a write by 1 ms
  // when level 0 has too many files, and blocks it when compaction is far behind.
  uint64_t write_stalls() const { return write_stalls_.load(std::memory_order_relaxed); }

  // What the writer knows at a commit. The key parts are signed: a blind
  // write counts its key as existing, and the counter adds it later if not.
  struct Commit {
    uint64_t sequence = 0;
    int64_t known_keys = 0, known_expires = 0;
    uint64_t counted_through = UINT64_MAX;  // lower it when this batch leaves keys unresolved
    bool reset_adjustments = false;         // the batch flushed everything (counter drained first)
  };
  // Writer thread only: writes batch plus the meta record (applied sequence
  // and the true counts: known + corrections) atomically.
  Status Write(leveldb::WriteBatch* batch, const Commit& commit, bool sync);
  // Writer thread only: a batch without a new applied sequence (the blob
  // collector's moved references). Every LevelDB write goes through one of
  // these two, which keep the row cache in step.
  Status WriteUnsequenced(leveldb::WriteBatch* batch, bool sync);

  // The row cache (nullptr when off). With on_write, each value written
  // goes into it as it commits (else writes only remove their keys).
  const RowCache* rows() const { return rows_.get(); }
  void set_row_cache_on_write(bool on) { row_cache_on_write_.store(on); }

  // The filter of keys LevelDB holds (nullptr when off): Get answers
  // "absent" from it without a LevelDB lookup, and so does the writer's
  // existence check (WriteGroup).
  const KeyFilter* key_filter() const { return keys_.get(); }

  // Damage LevelDB reported: counted and named by file (storage/corruption.h).
  const CorruptionLog& corruption() const { return *corruption_; }
  // FromLevelDB, recording a corruption (CorruptionLog::Note).
  Status Checked(const leveldb::Status& s, std::string_view what, bool point_read = false) const {
    return corruption_->Note(s, what, point_read);
  }

  leveldb::DB* raw() const { return db_.get(); }
  DeferringEnv* env() const { return env_.get(); }
  const std::string& path() const { return path_; }
  // A consistent copyable set of the database's files (storage/checkpoint.h).
  StatusOr<std::unique_ptr<Checkpoint>> TakeCheckpoint() { return Checkpoint::Take(env_.get(), path_); }

 private:
  Engine() = default;
  // Calls add for every data key in a snapshot; false if stop() turned true
  // or the read failed. The key filter's scan.
  bool ScanDataKeys(const std::function<void(std::string_view)>& add, const std::function<bool()>& stop) const;
  std::string path_;
  std::unique_ptr<DeferringEnv> env_;  // outlives db_
  std::unique_ptr<leveldb::Logger> info_log_;
  std::unique_ptr<CorruptionLog> corruption_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<class CountingCache> cache_;
  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<BlobFiles> blobs_;
  std::unique_ptr<RowCache> rows_;
  std::unique_ptr<KeyFilter> keys_;  // stopped before db_ closes
  std::atomic<size_t> blob_min_bytes_{0};
  std::atomic<bool> row_cache_on_write_{true};
  // Every LevelDB write: keeps the row cache and key filter in step. flush:
  // the batch deletes every key first (FLUSHALL).
  leveldb::Status WriteAndInvalidate(const leveldb::WriteOptions& wo, leveldb::WriteBatch* batch, bool write_through,
                                     bool flush);
  mutable std::mutex iter_mu_;
  mutable std::multiset<uint64_t> live_iters_;  // guarded by iter_mu_
  mutable std::atomic<uint64_t> iter_epoch_{0};
  std::atomic<uint64_t> applied_{0};
  static uint64_t Clamp(int64_t v) { return v < 0 ? 0 : static_cast<uint64_t>(v); }
  std::atomic<int64_t> known_keys_{0}, known_expires_{0};
  std::atomic<int64_t> adjust_keys_{0}, adjust_expires_{0};
  std::atomic<uint64_t> counted_through_{UINT64_MAX};
  bool needs_recount_ = false;
  std::atomic<uint64_t> write_stalls_{0};
};

// Every read levee makes: block checksums verified as blocks come from disk
// (LevelDB's default skips them, so a damaged block could be returned as
// data; cached blocks were verified when read).
inline leveldb::ReadOptions VerifiedReads() {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  return ro;
}

// Converts a LevelDB status to ours, naming what was being done.
Status FromLevelDB(const leveldb::Status& s, std::string_view what);

}  // namespace levee::storage
