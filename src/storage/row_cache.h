// RowCache: LevelDB values by key, in front of Engine::Get, so that a read
// of a recently read key skips LevelDB's memtable and table lookups (the
// skip-list walk, key comparisons and the DB mutex, taken twice per Get).
//
// What it holds is exactly what LevelDB holds for the key: the encoded
// StoredValue, which for a large value is its blob reference (the blob
// value cache, storage/blob.h, holds the payload), or that the key is
// absent. Only values up to max_value_bytes are kept.
//
// Invalidation is ordered against commits. Readers fill the cache on a
// miss; the one writer thread brackets every LevelDB write with
// BeginWrite/EndWrite for each key it touches. Each key hashes to a stripe
// with a version and a count of writes in flight:
//
//   reader:  t = Ticket(k); v = LevelDB Get(k); Fill(k, v, t)
//   writer:  BeginWrite(k)  [stripe locked: writing++, version++; then erase
//                            k, unless the writer will Store its new value]
//            LevelDB Write
//            Store(k, new)  [optional: replaces the entry in one step]
//            EndWrite(k)    [version++, then writing--]
//
// Fill inserts, under the stripe's lock, only if no write is in flight on
// the stripe and its version is still the ticket's. So a value read before
// a commit is never inserted after it: either the fill precedes the
// writer's BeginWrite (and the erase or the Store replaces it) or the fill
// sees the write in flight or a newer version (and drops it). While a write
// is in flight the key's entry is either absent (every reader goes to
// LevelDB, which orders reads against the commit itself) or still the old
// value until Store swaps in the new one (and once a reader has missed, no
// fill can bring the old value back before EndWrite). Either way no reader
// sees the old value after another saw the new one, and every read that
// starts after the write is acknowledged sees it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <leveldb/cache.h>

namespace levee::storage {

class CountingCache;

class RowCache {
 public:
  RowCache(size_t capacity_bytes, size_t max_value_bytes);
  ~RowCache();
  RowCache(const RowCache&) = delete;
  RowCache& operator=(const RowCache&) = delete;

  // Reader side (any thread). Lookup copies a cached value into *raw.
  enum class Result { kMiss, kPresent, kAbsent };
  Result Lookup(std::string_view db_key, std::string* raw) const;
  uint64_t Ticket(std::string_view db_key) const;
  void Fill(std::string_view db_key, std::string_view raw, uint64_t ticket);
  void FillAbsent(std::string_view db_key, uint64_t ticket);

  // Writer side (one thread at a time), around a LevelDB write of db_key.
  // replacing: the writer will Store the key's new value (or Erase it)
  // before EndWrite, so the old entry may stay until then.
  void BeginWrite(std::string_view db_key, bool replacing = false);
  // Between the LevelDB write and EndWrite: puts the value just written in
  // the cache (no reader can fill the key meanwhile).
  void Store(std::string_view db_key, std::string_view raw);
  void Erase(std::string_view db_key);
  void EndWrite(std::string_view db_key);
  // The writer's view, between its writes: what LevelDB holds for db_key,
  // if cached (not counted as a hit or miss: it is no client's read).
  Result Peek(std::string_view db_key, std::string* raw) const;

  // Drops every entry (the memory comes back at once, e.g. after FLUSHALL).
  void Clear();

  size_t capacity() const { return capacity_; }
  size_t max_value_bytes() const { return max_value_bytes_; }
  size_t bytes() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Stripe {
    std::mutex mu;
    std::atomic<uint64_t> version{0};
    std::atomic<uint32_t> writing{0};
  };
  static constexpr size_t kStripes = 1024;
  Stripe& StripeOf(std::string_view db_key) const;
  void Insert(std::string_view db_key, std::string_view raw, bool absent, uint64_t ticket);
  void InsertUnchecked(std::string_view db_key, std::string_view raw, bool absent);
  Result Get(leveldb::Cache::Handle* h, std::string* raw) const;

  const size_t capacity_;
  const size_t max_value_bytes_;
  std::unique_ptr<CountingCache> cache_;
  std::unique_ptr<Stripe[]> stripes_;
};

}  // namespace levee::storage
