#include "storage/engine.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/coding.h"
#include "storage/counting_cache.h"
#include "storage/leveldb_logger.h"

namespace levee::storage {

Status FromLevelDB(const leveldb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.ToString().find("No space left") != std::string::npos) return Status::NoSpace(msg);
  return Status::IOError(msg);
}

namespace {

// The largest stored value the row cache keeps: small values and blob
// references (large values are in the blob value cache).
constexpr size_t kRowCacheMaxValue = 4096 + 32;

// Which file a failed recovery was reading: LevelDB names a damaged log
// file in its info log ("<file>: dropping N bytes; ..."); otherwise recovery
// failed in the MANIFEST that CURRENT names.
std::string DamagedFile(const std::string& dir, const std::vector<std::string>& info_log) {
  for (const auto& line : info_log) {
    size_t d = line.find(": dropping ");
    if (d != std::string::npos) return line.substr(0, d);
  }
  std::ifstream current(std::filesystem::path(dir) / "CURRENT");
  std::string manifest;
  if (current && std::getline(current, manifest) && !manifest.empty()) {
    return (std::filesystem::path(dir) / manifest).string();
  }
  return (std::filesystem::path(dir) / "CURRENT").string();
}

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  std::error_code ec;
  if (options.create_if_missing) std::filesystem::create_directories(options.path, ec);
  e->path_ = options.path;
  e->env_ = std::make_unique<DeferringEnv>();
  auto* logger = new RecentLogger((std::filesystem::path(options.path) / "LOG").string());
  e->info_log_.reset(logger);
  e->corruption_ = std::make_unique<CorruptionLog>(options.path);
  logger->set_on_corruption([c = e->corruption_.get()](const std::string& line) { c->NoteBackground(line); });
  e->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  e->cache_ = std::make_unique<CountingCache>(options.block_cache_bytes);
  leveldb::Options o;
  o.create_if_missing = options.create_if_missing;
  o.paranoid_checks = true;
  o.env = e->env_.get();
  o.info_log = logger;
  o.block_cache = e->cache_.get();
  o.filter_policy = e->filter_.get();
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_open_files = options.max_open_files;
  // LevelDB's default. Level 1 holds only 10 MiB (fixed in LevelDB), so
  // larger table files make every level-1 compaction rewrite far more.
  o.max_file_size = 2ull << 20;
  leveldb::DB* db = nullptr;
  leveldb::Status s = leveldb::DB::Open(o, options.path, &db);
  if (!s.ok()) {
    std::string text = s.ToString();
    if (text.find("lock") != std::string::npos && text.find("LOCK") != std::string::npos) {
      return Status::Busy("data directory " + options.path +
                          " is in use by another levee process (its LevelDB LOCK is held): "
                          "stop that process or choose another --data-dir");
    }
    if (s.IsCorruption()) {
      return Status::Corruption("data directory " + options.path + " is corrupt: " + text + " in " +
                                DamagedFile(options.path, logger->Recent()) +
                                "; restore it from a backup (levee check reports details)");
    }
    return FromLevelDB(s, "cannot open data directory " + options.path);
  }
  e->db_.reset(db);

  std::string v;
  s = db->Get(leveldb::ReadOptions(), MetaKey(kFormatMetaName), &v);
  if (s.ok()) {
    if (v.size() != 4 || DecodeFixed32(v.data()) > kFormatVersion) {
      return Status::InvalidArgument("data directory " + options.path +
                                     " was written by a newer levee (format " +
                                     std::to_string(v.size() == 4 ? DecodeFixed32(v.data()) : 0) +
                                     "); run that version or restore a compatible backup");
    }
  }
  if (s.IsNotFound() || (s.ok() && DecodeFixed32(v.data()) < kFormatVersion)) {
    // New, or written by a levee without blob files (format 1 is a subset
    // of 2): mark it, so that a levee that knows only 1 refuses it from now on.
    std::string f;
    PutFixed32(&f, kFormatVersion);
    leveldb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, MetaKey(kFormatMetaName), f);
    if (!s.ok()) return FromLevelDB(s, "cannot initialise " + options.path);
  } else if (!s.ok()) {
    return FromLevelDB(s, "cannot read format of " + options.path);
  }
  e->blobs_ = std::make_unique<BlobFiles>(options.path, e->env_.get(), options.blob_file_bytes,
                                         options.blob_cache_bytes);
  LEVEE_RETURN_IF_ERROR(e->blobs_->Open());
  e->blob_min_bytes_ = options.blob_min_bytes;
  if (options.row_cache_bytes > 0) e->rows_ = std::make_unique<RowCache>(options.row_cache_bytes, kRowCacheMaxValue);

  s = db->Get(leveldb::ReadOptions(), MetaKey(kAppliedMetaName), &v);
  if (s.ok()) {
    AppliedMeta m;
    if (!DecodeAppliedMeta(v, &m)) {
      return Status::Corruption("data directory " + options.path + ": applied-sequence record is malformed");
    }
    e->applied_ = m.sequence;
    e->known_keys_ = static_cast<int64_t>(m.key_count);
    e->known_expires_ = static_cast<int64_t>(m.expires_count);
    e->needs_recount_ = m.counted_through < m.sequence;
  } else if (!s.IsNotFound()) {
    return FromLevelDB(s, "cannot read applied sequence of " + options.path);
  }
  if (options.key_filter_bits_per_key > 0) {
    Engine* eng = e.get();
    e->keys_ = std::make_unique<KeyFilter>(
        options.key_filter_bits_per_key,
        [eng](const std::function<void(std::string_view)>& add, const std::function<bool()>& stop) {
          return eng->ScanDataKeys(add, stop);
        },
        [eng] { return eng->key_count(); });
  }
  return e;
}

Engine::~Engine() {
  keys_.reset();  // its scan reads db_
  db_.reset();    // before the cache, filter and logger it uses
}

bool Engine::ScanDataKeys(const std::function<void(std::string_view)>& add, const std::function<bool()>& stop) const {
  leveldb::ReadOptions ro = VerifiedReads();
  ro.fill_cache = false;  // a one-off pass: keep the foreground's blocks cached
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(ro));
  size_t n = 0;
  for (it->Seek(std::string(1, kDataPrefix)); it->Valid() && it->key()[0] == kDataPrefix; it->Next()) {
    add(std::string_view(it->key().data(), it->key().size()));
    if (++n % 1024 == 0 && stop()) return false;
  }
  return it->status().ok();
}

Status Engine::Get(std::string_view user_key, StoredValue* value, bool* found, bool resolve) const {
  std::string raw;
  const std::string key = DataKey(user_key);
  // A blob file can vanish between reading the reference and the value
  // (the collector moved the value and removed the file): read again, which
  // finds the new reference. The retries skip the row cache.
  for (int attempt = 0;; attempt++) {
    const RowCache::Result cached =
        rows_ != nullptr && attempt == 0 ? rows_->Lookup(key, &raw) : RowCache::Result::kMiss;
    if (cached == RowCache::Result::kAbsent) {
      *found = false;
      return Status::OK();
    }
    if (cached == RowCache::Result::kPresent) {
      if (!DecodeValue(std::move(raw), value)) return Status::Corruption("undecodable value stored for a key");
    } else if (attempt == 0 && keys_ != nullptr && !keys_->MayContain(key)) {
      *found = false;
      return Status::OK();
    } else {
      const uint64_t ticket = rows_ != nullptr ? rows_->Ticket(key) : 0;
      leveldb::Status s = db_->Get(VerifiedReads(), key, &raw);
      if (s.IsNotFound()) {
        if (rows_ != nullptr) rows_->FillAbsent(key, ticket);
        *found = false;
        return Status::OK();
      }
      if (!s.ok()) return corruption_->Note(s, "read", /*point_read=*/true);
      if (rows_ != nullptr) rows_->Fill(key, raw, ticket);
      if (!DecodeValue(std::move(raw), value)) return Status::Corruption("undecodable value stored for a key");
    }
    *found = true;
    if (!resolve) return Status::OK();
    Status st = Resolve(user_key, value);
    if (st.code() != Status::Code::kNotFound || attempt >= 3) return st;
  }
}

Status Engine::ResolveIn(const BlobFiles* blobs, std::string_view user_key, StoredValue* value, bool fill_cache) {
  if (!value->in_blob || value->blob_loaded) return Status::OK();
  if (blobs == nullptr) return Status::Corruption("a value is in a blob file but no blob files were opened");
  LEVEE_RETURN_IF_ERROR(blobs->Read(value->blob, user_key, &value->payload, fill_cache));
  value->blob_loaded = true;
  return Status::OK();
}

namespace {
// Forwards to LevelDB's iterator and keeps the engine's count of live
// iterators (see Engine::oldest_iterator).
class TrackedIterator final : public leveldb::Iterator {
 public:
  TrackedIterator(leveldb::Iterator* it, std::mutex* mu, std::multiset<uint64_t>* live, uint64_t epoch)
      : it_(it), mu_(mu), live_(live), epoch_(epoch) {}
  ~TrackedIterator() override {
    it_.reset();
    std::lock_guard<std::mutex> l(*mu_);
    live_->erase(live_->find(epoch_));
  }
  bool Valid() const override { return it_->Valid(); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  void SeekToLast() override { it_->SeekToLast(); }
  void Seek(const leveldb::Slice& target) override { it_->Seek(target); }
  void Next() override { it_->Next(); }
  void Prev() override { it_->Prev(); }
  leveldb::Slice key() const override { return it_->key(); }
  leveldb::Slice value() const override { return it_->value(); }
  leveldb::Status status() const override { return it_->status(); }

 private:
  std::unique_ptr<leveldb::Iterator> it_;
  std::mutex* mu_;
  std::multiset<uint64_t>* live_;
  uint64_t epoch_;
};
}  // namespace

std::unique_ptr<leveldb::Iterator> Engine::NewIterator(bool verify) const {
  leveldb::ReadOptions ro = VerifiedReads();
  ro.fill_cache = !verify;
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> l(iter_mu_);
    epoch = ++iter_epoch_;
    live_iters_.insert(epoch);
  }
  return std::make_unique<TrackedIterator>(db_->NewIterator(ro), &iter_mu_, &live_iters_, epoch);
}

uint64_t Engine::oldest_iterator() const {
  std::lock_guard<std::mutex> l(iter_mu_);
  return live_iters_.empty() ? UINT64_MAX : *live_iters_.begin();
}

std::string Engine::Property(std::string_view name) const {
  std::string v;
  if (!db_->GetProperty(leveldb::Slice(name.data(), name.size()), &v)) return "";
  return v;
}

uint64_t Engine::ApproximateSize() const {
  leveldb::Range r(leveldb::Slice("\x00", 1), leveldb::Slice("\xff", 1));
  uint64_t size = 0;
  db_->GetApproximateSizes(&r, 1, &size);
  return size;
}

uint64_t Engine::block_cache_hits() const { return cache_->hits(); }
uint64_t Engine::block_cache_misses() const { return cache_->misses(); }
uint64_t Engine::block_cache_bytes() const { return cache_->TotalCharge(); }

Status Engine::Write(leveldb::WriteBatch* batch, const Commit& c, bool sync) {
  if (c.reset_adjustments) {
    adjust_keys_ = 0;
    adjust_expires_ = 0;
  }
  AppliedMeta meta;
  meta.sequence = c.sequence;
  meta.counted_through = std::min(counted_through_.load(std::memory_order_acquire), c.counted_through);
  meta.key_count = Clamp(c.known_keys + adjust_keys_.load());
  meta.expires_count = Clamp(c.known_expires + adjust_expires_.load());
  batch->Put(MetaKey(kAppliedMetaName), EncodeAppliedMeta(meta));
  leveldb::WriteOptions wo;
  wo.sync = sync;
  auto t0 = std::chrono::steady_clock::now();
  // A flush deletes every key: nothing to write through.
  leveldb::Status s = WriteAndInvalidate(wo, batch, /*write_through=*/!c.reset_adjustments, c.reset_adjustments);
  if (!sync && std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(1)) {
    write_stalls_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!s.ok()) return corruption_->Note(s, "write to LevelDB", /*point_read=*/false);
  if (c.reset_adjustments && rows_ != nullptr) rows_->Clear();  // a flush: give the memory back now
  known_keys_.store(c.known_keys, std::memory_order_release);
  known_expires_.store(c.known_expires, std::memory_order_release);
  applied_.store(meta.sequence, std::memory_order_release);
  return Status::OK();
}

Status Engine::WriteUnsequenced(leveldb::WriteBatch* batch, bool sync) {
  leveldb::WriteOptions wo;
  wo.sync = sync;
  return corruption_->Note(WriteAndInvalidate(wo, batch, /*write_through=*/true, /*flush=*/false), "write to LevelDB",
                           /*point_read=*/false);
}

namespace {
// The data keys a batch puts or deletes, with what it puts (views into the
// batch).
class DataKeys final : public leveldb::WriteBatch::Handler {
 public:
  struct Entry {
    std::string_view key, value;
    bool put;
  };
  std::vector<Entry> entries;
  void Put(const leveldb::Slice& key, const leveldb::Slice& value) override { Add(key, value, true); }
  void Delete(const leveldb::Slice& key) override { Add(key, {}, false); }

 private:
  void Add(const leveldb::Slice& key, const leveldb::Slice& value, bool put) {
    if (!key.empty() && key[0] == kDataPrefix) {
      entries.push_back(Entry{{key.data(), key.size()}, {value.data(), value.size()}, put});
    }
  }
};
}  // namespace

leveldb::Status Engine::WriteAndInvalidate(const leveldb::WriteOptions& wo, leveldb::WriteBatch* batch,
                                          bool write_through, bool flush) {
  if (rows_ == nullptr && keys_ == nullptr) return db_->Write(wo, batch);
  DataKeys touched;
  leveldb::Status s = batch->Iterate(&touched);
  if (!s.ok()) return s;
  {
    // The keys this batch puts are in the filter before LevelDB has them.
    std::shared_lock<std::shared_mutex> filter_lock;
    if (keys_ != nullptr) {
      filter_lock = keys_->LockForWrite();
      for (const auto& e : touched.entries) {
        if (e.put) keys_->Add(e.key);
      }
    }
    if (rows_ == nullptr) {
      s = db_->Write(wo, batch);
    } else {
      // A put written through keeps its old entry until Store replaces it.
      write_through = write_through && row_cache_on_write_.load(std::memory_order_relaxed);
      for (const auto& e : touched.entries) rows_->BeginWrite(e.key, write_through && e.put);
      s = db_->Write(wo, batch);
      for (const auto& e : touched.entries) {
        if (!s.ok()) {
          rows_->Erase(e.key);  // whatever LevelDB now holds, the cache holds nothing older
        } else if (write_through && e.put) {
          rows_->Store(e.key, e.value);  // in batch order: a key written twice ends as its last write left it
        } else if (!e.put && write_through) {
          rows_->Erase(e.key);  // a delete after a put of the same key in this batch
        }
      }
      for (const auto& e : touched.entries) rows_->EndWrite(e.key);
    }
  }
  if (s.ok() && flush && keys_ != nullptr) {
    // Until now the filter held every old key too (a superset: correct);
    // from here only what the batch put (after its deletes, or before them:
    // an extra key only costs a lookup).
    std::vector<std::string_view> puts;
    for (const auto& e : touched.entries) {
      if (e.put) puts.push_back(e.key);
    }
    keys_->Reset(puts);
  }
  return s;
}

}  // namespace levee::storage
