#include "storage/view.h"

#include <leveldb/db.h>

#include "storage/engine.h"

namespace levee::storage {

Status EngineView::Get(std::string_view key, StoredValue* value, bool* found) {
  return engine_->Get(key, value, found);
}

void SeekDataReverse(leveldb::Iterator* it, std::string_view start) {
  std::string k = start.empty() ? std::string(1, kDataPrefix + 1) : DataKey(start);
  it->Seek(k);
  if (!it->Valid()) {
    it->SeekToLast();
  } else if (start.empty() || it->key().ToString() != k) {
    it->Prev();
  }
  // Step back over the expiry index and meta keys that sort after data.
  while (it->Valid() && it->key().size() > 0 && it->key()[0] > kDataPrefix) it->Prev();
}

Status DecodeStored(const leveldb::Slice& raw, StoredValue* v) {
  if (!DecodeValue(std::string_view(raw.data(), raw.size()), v)) {
    return Status::Corruption("undecodable value stored for a key");
  }
  return Status::OK();
}

void SeekData(leveldb::Iterator* it, std::string_view start, bool reverse) {
  if (reverse) SeekDataReverse(it, start);
  else it->Seek(DataKey(start));
}

Status EngineView::Walk(std::string_view start, bool reverse,
                        const std::function<bool(std::string_view, const StoredValue&)>& fn) {
  auto it = engine_->NewIterator();
  SeekData(it.get(), start, reverse);
  StoredValue v;
  for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
    leveldb::Slice k = it->key();
    if (k.empty() || k[0] != kDataPrefix) break;
    LEVEE_RETURN_IF_ERROR(DecodeStored(it->value(), &v));
    if (!fn(std::string_view(k.data() + 1, k.size() - 1), v)) break;
  }
  if (!it->status().ok()) return engine_->Checked(it->status(), "scan");
  return Status::OK();
}

uint64_t EngineView::KeyCount() { return engine_->key_count(); }

Status EngineView::Load(std::string_view key, StoredValue* value, bool fill_cache) {
  return engine_->Resolve(key, value, fill_cache);
}

}  // namespace levee::storage
