// WriteGroup: the writer thread's pending writes for one group commit.
//
// Commands in a group run one after the other against the group (a
// DataView), so each sees the writes before it; their effects are staged in
// one LevelDB WriteBatch and, when recording is on, appended as wal
// Mutations to the record being built. Replay and replicas stage the same
// Mutations through Apply(), so every path reaches the same state.
//
// Writer thread only.
#pragma once

#include <leveldb/write_batch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "storage/engine.h"
#include "storage/key_counter.h"
#include "storage/view.h"
#include "wal/record.h"

namespace levee::storage {

class WriteGroup final : public DataView {
 public:
  // With a counter, a blind write of a key the group knows nothing about
  // is counted later by the counter instead of read now (key_counter.h).
  explicit WriteGroup(Engine* engine, KeyCounter* counter = nullptr);
  WriteGroup(const WriteGroup&) = delete;
  WriteGroup& operator=(const WriteGroup&) = delete;

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
  Status Load(std::string_view key, StoredValue* value, bool fill_cache = true) override {
    return engine_->Resolve(key, value, fill_cache);
  }

  // Where mutations are recorded (nullptr: not recorded).
  void set_recording(std::vector<wal::Mutation>* r) { recording_ = r; }

  Status Put(std::string_view key, const StoredValue& value);
  // Deletes key if present; *deleted says whether it was.
  Status Delete(std::string_view key, bool* deleted);
  Status FlushAll();
  // PUBLISH: recorded (so replicas deliver it too), and kept for the writer
  // to deliver once the group is committed (subscribers then read the
  // writes before it). Not cleared by Commit/Reset: TakePublished() is.
  // With log false it is only delivered (no replica needs it).
  void Publish(std::string_view channel, std::string_view message, bool log = true);
  std::vector<std::pair<std::string, std::string>> TakePublished();
  // Stages a mutation read from the log or a replication stream (a
  // kPublish is a no-op here).
  Status Apply(const wal::Mutation& m);
  // Removes a raw LevelDB key (a stale expiry index entry); not recorded.
  void DeleteRaw(const std::string& leveldb_key) { batch_.Delete(leveldb_key); staged_ = true; }

  bool empty() const { return !staged_; }
  // Bytes the staged batch will take in LevelDB's own log (a FLUSHALL of a
  // large data set is one tombstone per key).
  size_t ApproximateBytes() const { return batch_.ApproximateSize(); }
  // Writes everything staged and the applied sequence to LevelDB, then resets.
  Status Commit(uint64_t sequence, bool sync);
  // Drops everything staged (the log append failed).
  void Reset();

 private:
  Status Walk(std::string_view start, bool reverse,
              const std::function<bool(std::string_view, const StoredValue&)>& fn);
  Status StagePut(std::string_view key, std::string encoded, int64_t expire_at_ms);

  Engine* engine_;
  KeyCounter* counter_;
  leveldb::WriteBatch batch_;
  // What this group read from LevelDB about a key.
  struct Known {
    bool found = false, expiry = false;
    bool in_blob = false;
    BlobRef blob;
  };
  std::map<std::string, Known, std::less<>> read_cache_;
  // Values this group put in blob files, by key: dead once overwritten.
  std::map<std::string, BlobRef, std::less<>> staged_blobs_;
  // The old value of key (now being overwritten or deleted) was in a blob.
  void Superseded(std::string_view key, const Known* known);
  // What LevelDB holds for key, without reading a blob; cached.
  Status ReadMeta(std::string_view key, Known* k);
  // What LevelDB holds for key as far as the row cache or the key filter
  // knows without a lookup (false: neither knows).
  bool PeekCached(std::string_view key, Known* k);
  std::vector<UnresolvedKey> unresolved_;
  // Pending state per key: encoded value, or nullopt for deleted.
  std::map<std::string, std::optional<std::string>, std::less<>> overlay_;
  bool flushed_ = false;  // a FLUSHALL is staged: LevelDB's data counts as gone
  bool staged_ = false;
  int64_t key_delta_ = 0;
  int64_t expires_delta_ = 0;
  std::vector<wal::Mutation>* recording_ = nullptr;
  std::vector<std::pair<std::string, std::string>> published_;
};

}  // namespace levee::storage
