// Engine: levee's one LevelDB, with the key layout of storage/encoding.h.
//
// Reads (Get, NewIterator, properties, counters) are thread-safe and take no
// lock of levee's: io threads call them directly. Write() is for the writer
// thread only; every batch it writes carries the AppliedMeta record, so the
// applied log sequence is exactly what LevelDB holds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/encoding.h"

namespace leveldb {
class Cache;
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
  // caller's business: the value carries it).
  Status Get(std::string_view user_key, StoredValue* value, bool* found) const;
  // A raw iterator over the whole LevelDB (all prefixes), checksums verified
  // when verify is true. Reads see one consistent snapshot.
  std::unique_ptr<leveldb::Iterator> NewIterator(bool verify = false) const;

  uint64_t applied_sequence() const { return applied_.load(std::memory_order_acquire); }
  uint64_t key_count() const { return key_count_.load(std::memory_order_acquire); }
  uint64_t expires_count() const { return expires_count_.load(std::memory_order_acquire); }
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

  // Writer thread only: writes batch plus the meta record atomically.
  Status Write(leveldb::WriteBatch* batch, const AppliedMeta& meta, bool sync);

  leveldb::DB* raw() const { return db_.get(); }

 private:
  Engine() = default;
  std::unique_ptr<leveldb::Logger> info_log_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<class CountingCache> cache_;
  std::unique_ptr<leveldb::DB> db_;
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> key_count_{0};
  std::atomic<uint64_t> expires_count_{0};
  std::atomic<uint64_t> write_stalls_{0};
};

// Converts a LevelDB status to ours, naming what was being done.
Status FromLevelDB(const leveldb::Status& s, std::string_view what);

}  // namespace levee::storage
