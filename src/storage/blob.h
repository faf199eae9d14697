// Blob files: large values kept out of LevelDB (docs/formats/blob.md).
//
// LevelDB rewrites every value each time compaction moves it down a level:
// with 4 KiB values and a few GB of data that is tens of times the data per
// write, and one compaction thread cannot keep up. So a value of
// blob-min-bytes or more is appended to a blob file in the database
// directory, and LevelDB holds only a reference (file, offset, length) in
// the value encoding. Compaction then moves a few dozen bytes per key.
//
// A blob file is append-only and named vlog-NNNNNN.blob; each run of levee
// appends to a new one, and a file is sealed at blob-file-mb. Overwrites and
// deletes leave dead records behind; the collector (blob_gc.h) copies the
// live records of a mostly-dead sealed file forward and removes it.
//
// Removal goes through the DeferringEnv, so a checkpoint that lists a blob
// file keeps it until the checkpoint is released. Blob files live in the
// LevelDB directory so checkpoints, backups and full resyncs carry them
// with the tables that reference them.
//
// A value cache (LevelDB's sharded LRU, in levee's own memory) holds values
// by location: Append puts each new value in it, Read fills it on a miss.
// It keeps GETs of large values off the disk when the page cache is small
// or reclaimed (a container's memory limit counts the page cache too).
// A location is never reused within one BlobFiles, so entries need no
// invalidation; those of removed files age out.
//
// Threads: Append and Seal are for the writer thread; Read, Sync, Remove,
// ScanFile and the statistics for any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace leveldb {
class Env;
}

namespace levee::storage {
class CountingCache;
}

namespace levee::storage {

struct BlobRef {
  uint64_t file = 0;
  uint64_t offset = 0;  // of the record
  uint32_t length = 0;  // of the value
  bool operator==(const BlobRef&) const = default;
};

std::string BlobFileName(uint64_t number);
bool ParseBlobFileName(std::string_view name, uint64_t* number);

struct BlobFileInfo {
  uint64_t number = 0;
  uint64_t bytes = 0;    // written (or found at start-up)
  uint64_t garbage = 0;  // estimated dead bytes
  bool surveyed = true;  // false: garbage unknown (written before this start)
  bool active = false;   // the file being appended to
};

struct BlobStats {
  uint64_t files = 0, bytes = 0, garbage = 0;
  uint64_t cache_capacity = 0, cache_bytes = 0, cache_hits = 0, cache_misses = 0;
};

class BlobFiles {
 public:
  // dir: the LevelDB directory. env: removals go through it (nullptr:
  // remove directly; read-only users never remove). cache_bytes: the value
  // cache's capacity (0: no cache).
  BlobFiles(std::string dir, leveldb::Env* env, uint64_t file_bytes = 64ull << 20, size_t cache_bytes = 0);
  ~BlobFiles();
  BlobFiles(const BlobFiles&) = delete;
  BlobFiles& operator=(const BlobFiles&) = delete;

  // Lists the blob files already in dir, with the garbage estimates the last
  // SaveEstimates left for them (kEstimatesFile; docs/formats/blob.md): a
  // sealed file whose size matches needs no survey after a restart.
  Status Open();
  // Writes the estimates of sealed, surveyed files atomically into dir.
  // After a crash they lack the garbage counted since the last save (a file
  // is collected later than it could be); the collector only ever moves
  // records LevelDB still refers to, so an estimate can never lose data.
  Status SaveEstimates() const;
  static constexpr const char* kEstimatesFile = "BLOB-GARBAGE";
  void set_file_bytes(uint64_t n) { file_bytes_.store(n); }
  // Whether AppendCached puts the new value in the cache (reads always do).
  void set_cache_on_write(bool on) { cache_on_write_.store(on, std::memory_order_relaxed); }

  // Writer thread. Appends a record for key's value; the new file is created
  // on the first append of a run and rolled at file_bytes. Not cached (the
  // collector's moves).
  StatusOr<BlobRef> Append(std::string_view key, std::string_view value);
  // The same for the value at buffer[value_offset..]; buffer then goes into
  // the value cache as it is (no second copy), unless cache-on-write is off.
  StatusOr<BlobRef> AppendCached(std::string_view key, std::string buffer, size_t value_offset);
  // The collector's move of the record at from (key, value) to the end: a
  // value that was cached stays cached at its new place.
  StatusOr<BlobRef> Move(const BlobRef& from, std::string_view key, std::string value);
  // fdatasync of the file being appended to (any thread).
  Status Sync();
  bool has_unsynced() const { return unsynced_.load(std::memory_order_acquire); }

  // Reads the value ref points at, checking the record's CRC and that it
  // belongs to key. NotFound when the file was removed (the collector moved
  // the value: read the key again). fill_cache false: a value read from the
  // file is not put in the value cache (a full pass such as a backup's
  // digest would otherwise push out what clients read, and allocate as much
  // memory as the data it reads).
  Status Read(const BlobRef& ref, std::string_view key, std::string* value, bool fill_cache = true) const;

  // Every record of a file in order: fn(offset, key, value) (value is the
  // stored bytes, CRC checked). Stops at a torn or corrupt tail, which is
  // reported in *torn_at (the file's size when whole). fn false stops.
  Status ScanFile(uint64_t number,
                  const std::function<bool(uint64_t offset, std::string_view key, std::string_view value)>& fn,
                  uint64_t* torn_at = nullptr) const;

  // Estimates for the collector. AddGarbage also drops the value from the
  // value cache (nothing live refers to it).
  void AddGarbage(const BlobRef& ref);
  void SetGarbage(uint64_t number, uint64_t garbage);
  // Everything written so far is dead (a FLUSHALL); empties the cache.
  void MarkAllGarbage();
  std::vector<BlobFileInfo> Files() const;
  BlobStats Stats() const;
  // Removes a sealed file (deferred while a checkpoint holds it).
  Status Remove(uint64_t number);

  static uint32_t RecordSize(size_t key_size, size_t value_size);

 private:
  std::string Path(uint64_t number) const;
  Status OpenNext();  // writer thread, under active_mu_
  void LoadEstimates();  // under info_mu_
  void CacheInsert(const BlobRef& ref, std::string_view key, std::string buffer, size_t value_offset) const;
  void CacheErase(const BlobRef& ref) const;
  bool CacheLookup(const BlobRef& ref, std::string_view key, std::string* value) const;

  const std::string dir_;
  leveldb::Env* env_;
  std::atomic<uint64_t> file_bytes_;

  // The file being appended to.
  std::mutex active_mu_;  // held by Sync and by a roll, never by a plain append
  int active_fd_ = -1;
  uint64_t active_number_ = 0;
  uint64_t active_size_ = 0;  // writer thread
  std::atomic<bool> unsynced_{false};
  uint64_t next_number_ = 1;

  mutable std::mutex info_mu_;
  std::map<uint64_t, BlobFileInfo> files_;

  // Read descriptors, opened on demand.
  mutable std::shared_mutex fds_mu_;
  mutable std::map<uint64_t, int> fds_;
  std::set<uint64_t> removed_;  // guarded by fds_mu_

  std::unique_ptr<CountingCache> cache_;  // null: no value cache
  size_t cache_capacity_ = 0;
  std::atomic<bool> cache_on_write_{true};
};

}  // namespace levee::storage
