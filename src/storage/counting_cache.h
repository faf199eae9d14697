// CountingCache: LevelDB's LRU block cache with hit and miss counters
// (LevelDB itself does not count them). Every call is delegated; Lookup
// adds one relaxed atomic increment.
#pragma once

#include <leveldb/cache.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace levee::storage {

class CountingCache final : public leveldb::Cache {
 public:
  explicit CountingCache(size_t capacity) : inner_(leveldb::NewLRUCache(capacity)) {}
  Handle* Insert(const leveldb::Slice& key, void* value, size_t charge,
                 void (*deleter)(const leveldb::Slice& key, void* value)) override {
    return inner_->Insert(key, value, charge, deleter);
  }
  Handle* Lookup(const leveldb::Slice& key) override {
    Handle* h = inner_->Lookup(key);
    (h ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
    return h;
  }
  // A lookup that is not a read (bookkeeping): not counted.
  Handle* LookupUncounted(const leveldb::Slice& key) { return inner_->Lookup(key); }
  void Release(Handle* handle) override { inner_->Release(handle); }
  void* Value(Handle* handle) override { return inner_->Value(handle); }
  void Erase(const leveldb::Slice& key) override { inner_->Erase(key); }
  uint64_t NewId() override { return inner_->NewId(); }
  void Prune() override { inner_->Prune(); }
  size_t TotalCharge() const override { return inner_->TotalCharge(); }

  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<leveldb::Cache> inner_;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

}  // namespace levee::storage
