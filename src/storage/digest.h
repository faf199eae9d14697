// KeyDigest: SHA-1 over every key's name, expiry, type and value in key
// order. DEBUG DIGEST answers it for the live data; a backup records it at
// its write barrier and `backup verify --deep` recomputes it from a restore.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/encoding.h"

namespace leveldb {
class Iterator;
}

namespace levee::storage {

class KeyDigest {
 public:
  KeyDigest();
  ~KeyDigest();
  KeyDigest(const KeyDigest&) = delete;
  KeyDigest& operator=(const KeyDigest&) = delete;

  void Add(std::string_view key, const StoredValue& v);
  // 40 hex digits; forty zeros when nothing was added (as Redis).
  std::string Finish();
  // One value alone (DEBUG DIGEST-VALUE): 40 hex digits.
  static std::string OfValue(const StoredValue& v);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  bool any_ = false;
};

// Digest of the data keys a raw LevelDB iterator sees (it may read a
// snapshot), leaving out keys expired at now_ms (0: none left out). Values
// in blob files are read from blobs (the same directory's). Stops
// early with an error when *cancel becomes true. pace (when set) is called
// with the bytes of keys and values read, about every MiB: a backup's
// digest takes them from its rate limit.
StatusOr<std::string> DigestData(leveldb::Iterator* it, const BlobFiles* blobs, int64_t now_ms, const std::atomic<bool>* cancel = nullptr,
                                 const std::function<void(uint64_t)>& pace = {});

}  // namespace levee::storage
