#include "storage/row_cache.h"

#include <cstdlib>
#include <cstring>
#include <functional>

#include "storage/counting_cache.h"

namespace levee::storage {

namespace {
// The cache's own per-entry cost besides the key and value bytes: LevelDB's
// LRU node and hash-table slot, and the allocation headers.
constexpr size_t kEntryOverhead = 96;

// One allocation per entry: a length (kAbsent: the key is known absent),
// then the value's bytes.
constexpr uint32_t kAbsent = UINT32_MAX;
struct Row {
  uint32_t size;
  char data[];
};
Row* NewRow(std::string_view raw, bool absent) {
  auto* r = static_cast<Row*>(std::malloc(sizeof(Row) + raw.size()));
  r->size = absent ? kAbsent : static_cast<uint32_t>(raw.size());
  if (!raw.empty()) std::memcpy(r->data, raw.data(), raw.size());  // memcpy from null is undefined even for 0 bytes
  return r;
}
void DeleteRow(const leveldb::Slice&, void* v) { std::free(v); }

leveldb::Slice ToSlice(std::string_view s) { return leveldb::Slice(s.data(), s.size()); }
}  // namespace

RowCache::RowCache(size_t capacity_bytes, size_t max_value_bytes)
    : capacity_(capacity_bytes),
      max_value_bytes_(max_value_bytes),
      cache_(std::make_unique<CountingCache>(capacity_bytes)),
      stripes_(new Stripe[kStripes]) {}

RowCache::~RowCache() = default;

RowCache::Stripe& RowCache::StripeOf(std::string_view db_key) const {
  return stripes_[std::hash<std::string_view>{}(db_key) % kStripes];
}

RowCache::Result RowCache::Get(leveldb::Cache::Handle* h, std::string* raw) const {
  if (h == nullptr) return Result::kMiss;
  const Row* r = static_cast<const Row*>(cache_->Value(h));
  Result result = Result::kAbsent;
  if (r->size != kAbsent) {
    raw->assign(r->data, r->size);
    result = Result::kPresent;
  }
  cache_->Release(h);
  return result;
}

RowCache::Result RowCache::Lookup(std::string_view db_key, std::string* raw) const {
  return Get(cache_->Lookup(ToSlice(db_key)), raw);
}

RowCache::Result RowCache::Peek(std::string_view db_key, std::string* raw) const {
  return Get(cache_->LookupUncounted(ToSlice(db_key)), raw);
}

uint64_t RowCache::Ticket(std::string_view db_key) const {
  return StripeOf(db_key).version.load(std::memory_order_seq_cst);
}

void RowCache::Fill(std::string_view db_key, std::string_view raw, uint64_t ticket) { Insert(db_key, raw, false, ticket); }

void RowCache::FillAbsent(std::string_view db_key, uint64_t ticket) { Insert(db_key, {}, true, ticket); }

void RowCache::Insert(std::string_view db_key, std::string_view raw, bool absent, uint64_t ticket) {
  if (raw.size() > max_value_bytes_) return;
  Stripe& s = StripeOf(db_key);
  std::lock_guard<std::mutex> l(s.mu);
  if (s.writing.load(std::memory_order_seq_cst) != 0 || s.version.load(std::memory_order_seq_cst) != ticket) return;
  InsertUnchecked(db_key, raw, absent);
}

void RowCache::Store(std::string_view db_key, std::string_view raw) {
  if (raw.size() <= max_value_bytes_) {
    InsertUnchecked(db_key, raw, false);  // replaces the old entry in one step
  } else {
    cache_->Erase(ToSlice(db_key));
  }
}

void RowCache::Erase(std::string_view db_key) { cache_->Erase(ToSlice(db_key)); }

void RowCache::InsertUnchecked(std::string_view db_key, std::string_view raw, bool absent) {
  const size_t charge = db_key.size() + raw.size() + kEntryOverhead;
  cache_->Release(cache_->Insert(ToSlice(db_key), NewRow(raw, absent), charge, &DeleteRow));
}

void RowCache::BeginWrite(std::string_view db_key, bool replacing) {
  Stripe& s = StripeOf(db_key);
  {
    std::lock_guard<std::mutex> l(s.mu);
    s.writing.fetch_add(1, std::memory_order_seq_cst);
    s.version.fetch_add(1, std::memory_order_seq_cst);
  }
  // Outside the lock: no fill can land from here until EndWrite.
  if (!replacing) cache_->Erase(ToSlice(db_key));
}

void RowCache::EndWrite(std::string_view db_key) {
  Stripe& s = StripeOf(db_key);
  // Version first: a fill that sees no write in flight then sees the new
  // version, so a value read before the commit is not inserted.
  s.version.fetch_add(1, std::memory_order_seq_cst);
  s.writing.fetch_sub(1, std::memory_order_seq_cst);
}

void RowCache::Clear() { cache_->Prune(); }

size_t RowCache::bytes() const { return cache_->TotalCharge(); }
uint64_t RowCache::hits() const { return cache_->hits(); }
uint64_t RowCache::misses() const { return cache_->misses(); }

}  // namespace levee::storage
