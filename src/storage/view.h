// DataView: what a command reads through. Io threads use EngineView (LevelDB
// directly, no lock); the writer thread uses WriteGroup (its pending writes
// over LevelDB), so a command in a group sees the writes before it.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/encoding.h"

namespace leveldb {
class Iterator;
class Slice;
}

namespace levee::storage {

class Engine;

// Positions it at the last data key <= start (the last data key of all when
// start is empty); leaves it invalid or off the data prefix when none is.
void SeekDataReverse(leveldb::Iterator* it, std::string_view start);
// Positions it at the first data key of a walk from start in either direction.
void SeekData(leveldb::Iterator* it, std::string_view start, bool reverse);
// Decodes a stored value read from LevelDB; Corruption if it can't be.
Status DecodeStored(const leveldb::Slice& raw, StoredValue* v);

class DataView {
 public:
  virtual ~DataView() = default;
  // *found false if the key is absent. Expired values are returned as they
  // are: callers decide with StoredValue::ExpiredAt.
  virtual Status Get(std::string_view key, StoredValue* value, bool* found) = 0;
  // Calls fn for each key >= start in key order until it returns false. A
  // value kept in a blob file comes without its payload (in_blob set): call
  // Load for the ones whose payload is needed.
  virtual Status Scan(std::string_view start,
                      const std::function<bool(std::string_view key, const StoredValue&)>& fn) = 0;
  // Calls fn for each key <= start (every key, from the last, when start is
  // empty) in descending order until it returns false.
  virtual Status ScanReverse(std::string_view start,
                             const std::function<bool(std::string_view key, const StoredValue&)>& fn) = 0;
  // Number of keys, counting expired ones not yet removed.
  virtual uint64_t KeyCount() = 0;
  // Reads the payload of a value a scan passed without it (no-op otherwise).
  // fill_cache false: a full pass (DEBUG DIGEST) leaves the value cache to
  // clients (see BlobFiles::Read).
  virtual Status Load(std::string_view key, StoredValue* value, bool fill_cache = true) = 0;
};

class EngineView final : public DataView {
 public:
  explicit EngineView(Engine* engine) : engine_(engine) {}
  Status Get(std::string_view key, StoredValue* value, bool* found) override;
  Status Scan(std::string_view start,
              const std::function<bool(std::string_view, const StoredValue&)>& fn) override {
    return Walk(start, false, fn);
  }
  Status ScanReverse(std::string_view start,
                     const std::function<bool(std::string_view, const StoredValue&)>& fn) override {
    return Walk(start, true, fn);
  }
  uint64_t KeyCount() override;
  Status Load(std::string_view key, StoredValue* value, bool fill_cache = true) override;

 private:
  Status Walk(std::string_view start, bool reverse,
              const std::function<bool(std::string_view, const StoredValue&)>& fn);
  Engine* engine_;
};

}  // namespace levee::storage
