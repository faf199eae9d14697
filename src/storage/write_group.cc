#include "storage/write_group.h"

#include <leveldb/db.h>

#include "storage/engine.h"

namespace levee::storage {

WriteGroup::WriteGroup(Engine* engine, KeyCounter* counter) : engine_(engine), counter_(counter) {}

Status WriteGroup::Get(std::string_view key, StoredValue* value, bool* found) {
  auto it = overlay_.find(key);
  if (it != overlay_.end()) {
    *found = it->second.has_value();
    if (*found && !DecodeValue(*it->second, value)) return Status::Corruption("undecodable staged value");
    return Status::OK();
  }
  if (flushed_) {
    *found = false;
    return Status::OK();
  }
  LEVEE_RETURN_IF_ERROR(engine_->Get(key, value, found));
  read_cache_.insert_or_assign(std::string(key),
                               Known{*found, *found && value->HasExpiry(), *found && value->in_blob, value->blob});
  return Status::OK();
}

Status WriteGroup::Walk(std::string_view start, bool reverse,
                        const std::function<bool(std::string_view, const StoredValue&)>& fn) {
  // Merge LevelDB's data keys with the overlay, in walk order; the overlay
  // wins on equal keys (a nullopt there hides LevelDB's entry).
  auto it = engine_->NewIterator();
  if (!flushed_) SeekData(it.get(), start, reverse);
  auto fwd = overlay_.lower_bound(start);                                     // next entry, forward
  auto rev = start.empty() ? overlay_.end() : overlay_.upper_bound(start);    // one past the next, reverse
  auto ov_valid = [&] { return reverse ? rev != overlay_.begin() : fwd != overlay_.end(); };
  StoredValue v;
  while (true) {
    bool db_valid = !flushed_ && it->Valid() && it->key().size() > 0 && it->key()[0] == kDataPrefix;
    std::string_view db_key = db_valid ? std::string_view(it->key().data() + 1, it->key().size() - 1) : "";
    if (!db_valid && !ov_valid()) break;
    auto ov = ov_valid() ? (reverse ? std::prev(rev) : fwd) : overlay_.end();
    bool take_overlay =
        ov != overlay_.end() && (!db_valid || (reverse ? ov->first >= db_key : ov->first <= db_key));
    if (take_overlay) {
      if (db_valid && ov->first == db_key) reverse ? it->Prev() : it->Next();
      if (reverse) rev = ov;
      else ++fwd;
      if (ov->second.has_value()) {
        if (!DecodeValue(*ov->second, &v)) return Status::Corruption("undecodable staged value");
        if (!fn(ov->first, v)) break;
      }
    } else {
      LEVEE_RETURN_IF_ERROR(DecodeStored(it->value(), &v));
      if (!fn(db_key, v)) break;
      reverse ? it->Prev() : it->Next();
    }
  }
  if (!it->status().ok()) return engine_->Checked(it->status(), "scan");
  return Status::OK();
}

uint64_t WriteGroup::KeyCount() {
  int64_t base = flushed_ ? 0 : static_cast<int64_t>(engine_->key_count());
  return static_cast<uint64_t>(std::max<int64_t>(0, base + key_delta_));
}


Status WriteGroup::ReadMeta(std::string_view key, Known* k) {
  if (PeekCached(key, k)) return Status::OK();
  *k = Known{};
  std::string raw;
  leveldb::Status s = engine_->raw()->Get(VerifiedReads(), DataKey(key), &raw);
  if (s.ok()) {
    StoredValue v;
    if (!DecodeValue(raw, &v)) return Status::Corruption("undecodable value stored for a key");
    *k = Known{true, v.HasExpiry(), v.in_blob, v.blob};
  } else if (!s.IsNotFound()) {
    return engine_->Checked(s, "read", /*point_read=*/true);
  }
  read_cache_.insert_or_assign(std::string(key), *k);
  return Status::OK();
}

bool WriteGroup::PeekCached(std::string_view key, Known* k) {
  const RowCache* rows = engine_->rows();
  const KeyFilter* filter = engine_->key_filter();
  if (rows == nullptr && filter == nullptr) return false;
  const std::string dk = DataKey(key);
  std::string raw;
  switch (rows != nullptr ? rows->Peek(dk, &raw) : RowCache::Result::kMiss) {
    case RowCache::Result::kMiss:
      // Never in the filter: a new key, known without a lookup.
      if (filter == nullptr || filter->MayContain(dk)) return false;
      *k = Known{};
      break;
    case RowCache::Result::kAbsent:
      *k = Known{};
      break;
    case RowCache::Result::kPresent: {
      StoredValue v;
      if (!DecodeValue(raw, &v)) return false;  // ReadMeta or the counter reports it
      *k = Known{true, v.HasExpiry(), v.in_blob, v.blob};
      break;
    }
  }
  read_cache_.insert_or_assign(std::string(key), *k);
  return true;
}

void WriteGroup::Superseded(std::string_view key, const Known* known) {
  auto sb = staged_blobs_.find(key);
  if (sb != staged_blobs_.end()) {
    engine_->blobs()->AddGarbage(sb->second);
    staged_blobs_.erase(sb);
  } else if (known != nullptr && known->found && known->in_blob) {
    engine_->blobs()->AddGarbage(known->blob);
  }
}

Status WriteGroup::StagePut(std::string_view key, std::string encoded, int64_t expire_at_ms) {
  // A large value goes to its blob file first: if that fails nothing of this
  // write is staged or counted.
  std::string stored;
  std::optional<BlobRef> blob;
  size_t min = engine_->blob_min_bytes();
  const size_t header = ValueHeaderSize(encoded);
  if (min > 0 && encoded.size() - header >= min) {
    // The value cache gets its own copy: encoded stays in the overlay for
    // the rest of the group's commands.
    auto ref = engine_->blobs()->AppendCached(key, encoded, header);
    if (!ref.ok()) return ref.status();
    blob = ref.value();
    stored = EncodeBlobValue(encoded, *blob);
  }
  bool found = false, old_expiry = false;
  auto ov = overlay_.find(key);
  auto rc = ov == overlay_.end() ? read_cache_.find(key) : read_cache_.end();
  if (ov != overlay_.end()) {
    found = ov->second.has_value();
    old_expiry = found && ov->second->size() > 1 && ((*ov->second)[1] & 1);
    Superseded(key, nullptr);
  } else if (flushed_) {
    found = false;
  } else if (rc != read_cache_.end()) {
    found = rc->second.found;
    old_expiry = rc->second.expiry;
    Superseded(key, &rc->second);
  } else if (Known k; PeekCached(key, &k)) {
    // The row cache knows what LevelDB holds: no lookup, nothing to count later.
    found = k.found;
    old_expiry = k.expiry;
    Superseded(key, &k);
  } else if (counter_ && !counter_->overloaded()) {
    // Unknown: count it as existing without an expiry now; the counter
    // corrects both from a snapshot taken just before this group.
    unresolved_.push_back(UnresolvedKey{std::string(key), expire_at_ms != 0});
    found = true;
  } else {
    Known k;
    LEVEE_RETURN_IF_ERROR(ReadMeta(key, &k));
    found = k.found;
    old_expiry = k.expiry;
    Superseded(key, &k);
  }
  if (!found) key_delta_++;
  if (old_expiry) expires_delta_--;
  if (expire_at_ms != 0) expires_delta_++;
  if (blob) {
    batch_.Put(DataKey(key), stored);
    staged_blobs_.insert_or_assign(std::string(key), *blob);
  } else {
    batch_.Put(DataKey(key), encoded);
  }
  if (expire_at_ms != 0) batch_.Put(ExpiryKey(expire_at_ms, key), "");
  overlay_.insert_or_assign(std::string(key), std::move(encoded));
  staged_ = true;
  return Status::OK();
}

Status WriteGroup::Put(std::string_view key, const StoredValue& value) {
  std::string encoded;
  EncodeValue(value, &encoded);
  if (recording_ == nullptr) return StagePut(key, std::move(encoded), value.expire_at_ms);
  // Logged only once staged: a write that could not be staged (a full
  // disk under a blob file) must not reach the log either.
  std::string logged = encoded;
  LEVEE_RETURN_IF_ERROR(StagePut(key, std::move(encoded), value.expire_at_ms));
  recording_->push_back(wal::Mutation{wal::Mutation::Kind::kPut, std::string(key), std::move(logged)});
  return Status::OK();
}

Status WriteGroup::Delete(std::string_view key, bool* deleted) {
  bool found = false, old_expiry = false;
  auto ov = overlay_.find(key);
  if (ov != overlay_.end()) {
    found = ov->second.has_value();
    old_expiry = found && ov->second->size() > 1 && ((*ov->second)[1] & 1);
    if (found) Superseded(key, nullptr);
  } else if (!flushed_) {
    auto rc = read_cache_.find(key);
    Known k;
    if (rc != read_cache_.end()) k = rc->second;
    else LEVEE_RETURN_IF_ERROR(ReadMeta(key, &k));
    found = k.found;
    old_expiry = k.expiry;
    if (found) Superseded(key, &k);
  }
  if (deleted) *deleted = found;
  if (!found) return Status::OK();
  if (old_expiry) expires_delta_--;
  if (recording_) recording_->push_back(wal::Mutation{wal::Mutation::Kind::kDelete, std::string(key), {}});
  key_delta_--;
  batch_.Delete(DataKey(key));
  overlay_.insert_or_assign(std::string(key), std::nullopt);
  staged_ = true;
  return Status::OK();
}

Status WriteGroup::FlushAll() {
  // Pending corrections refer to keys this flush removes: let them land
  // first; the flush then resets the corrections with the counts.
  if (counter_) counter_->Drain();
  unresolved_.clear();
  read_cache_.clear();
  staged_blobs_.clear();
  engine_->blobs()->MarkAllGarbage();
  if (recording_) recording_->push_back(wal::Mutation{wal::Mutation::Kind::kFlushAll, {}, {}});
  for (const auto& [k, v] : overlay_) {
    if (v.has_value()) batch_.Delete(DataKey(k));
  }
  overlay_.clear();
  if (!flushed_) {
    // LevelDB has no range delete: every data and expiry-index key is deleted
    // one by one, inside this batch, so the flush is atomic.
    auto it = engine_->NewIterator();
    for (it->Seek(std::string(1, kDataPrefix)); it->Valid(); it->Next()) {
      char p = it->key()[0];
      if (p != kDataPrefix && p != kExpiryPrefix) break;
      batch_.Delete(it->key());
    }
    if (!it->status().ok()) return engine_->Checked(it->status(), "flush");
  }
  flushed_ = true;
  key_delta_ = 0;
  expires_delta_ = 0;
  staged_ = true;
  return Status::OK();
}

void WriteGroup::Publish(std::string_view channel, std::string_view message, bool log) {
  if (recording_ && log) {
    recording_->push_back(wal::Mutation{wal::Mutation::Kind::kPublish, std::string(channel), std::string(message)});
  }
  published_.emplace_back(channel, message);
}

std::vector<std::pair<std::string, std::string>> WriteGroup::TakePublished() {
  std::vector<std::pair<std::string, std::string>> out;
  out.swap(published_);
  return out;
}

Status WriteGroup::Apply(const wal::Mutation& m) {
  switch (m.kind) {
    case wal::Mutation::Kind::kPut: {
      StoredValue v;
      if (!DecodeValue(m.value, &v)) return Status::Corruption("log record holds an undecodable value");
      return StagePut(m.key, m.value, v.expire_at_ms);
    }
    case wal::Mutation::Kind::kDelete: {
      auto* saved = recording_;
      recording_ = nullptr;
      Status st = Delete(m.key, nullptr);
      recording_ = saved;
      return st;
    }
    case wal::Mutation::Kind::kFlushAll: {
      auto* saved = recording_;
      recording_ = nullptr;
      Status st = FlushAll();
      recording_ = saved;
      return st;
    }
    case wal::Mutation::Kind::kPublish:
      return Status::OK();  // no data; the writer delivers it after the commit
  }
  return Status::Corruption("log record holds an unknown mutation kind");
}

Status WriteGroup::Commit(uint64_t sequence, bool sync) {
  Engine::Commit c;
  c.sequence = sequence;
  c.known_keys = (flushed_ ? 0 : engine_->known_keys()) + key_delta_;
  c.known_expires = (flushed_ ? 0 : engine_->known_expires()) + expires_delta_;
  c.counted_through = unresolved_.empty() ? UINT64_MAX : sequence - 1;
  c.reset_adjustments = flushed_;
  // The state just before this batch: where the counter looks keys up.
  const leveldb::Snapshot* before = unresolved_.empty() ? nullptr : engine_->raw()->GetSnapshot();
  Status st = engine_->Write(&batch_, c, sync);
  if (before != nullptr) {
    if (st.ok()) counter_->Enqueue(before, sequence, std::move(unresolved_));
    else engine_->raw()->ReleaseSnapshot(before);
  }
  Reset();
  return st;
}

void WriteGroup::Reset() {
  batch_.Clear();
  overlay_.clear();
  flushed_ = false;
  staged_ = false;
  key_delta_ = 0;
  expires_delta_ = 0;
  read_cache_.clear();
  unresolved_.clear();
  staged_blobs_.clear();
}

}  // namespace levee::storage
