#include "storage/key_counter.h"

#include <leveldb/db.h>
#include <pthread.h>

#include <chrono>
#include <memory>

#include "storage/engine.h"

namespace levee::storage {

KeyCounter::KeyCounter(Engine* engine) : engine_(engine) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-counter");
    Run();
  });
}

KeyCounter::~KeyCounter() { Stop(); }

void KeyCounter::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void KeyCounter::Push(Batch b) {
  {
    std::lock_guard<std::mutex> l(mu_);
    // Until this batch is resolved, metas written say counts are resolved
    // only through the sequence before it (under mu_, so the counter thread
    // can't overwrite it with "all resolved" in between).
    engine_->set_counted_through(std::min(engine_->counted_through(), b.sequence - 1));
    pending_keys_.fetch_add(b.keys.size(), std::memory_order_relaxed);
    queue_.push_back(std::move(b));
  }
  cv_.notify_one();
}

void KeyCounter::Enqueue(const leveldb::Snapshot* snapshot, uint64_t sequence, std::vector<UnresolvedKey> keys) {
  Push(Batch{snapshot, sequence, std::move(keys)});
}

void KeyCounter::EnqueueRecount(const leveldb::Snapshot* snapshot, uint64_t sequence, uint64_t live_keys,
                                uint64_t live_expires) {
  Batch b{snapshot, sequence, {}};
  b.recount = true;
  b.live_keys = live_keys;
  b.live_expires = live_expires;
  Push(std::move(b));
}

void KeyCounter::Drain() const {
  std::unique_lock<std::mutex> l(mu_);
  done_cv_.wait(l, [&] { return queue_.empty() && !busy_; });
}

void KeyCounter::Resolve(const Batch& b) {
  int64_t dkeys = 0, dexpires = 0;
  leveldb::ReadOptions ro = VerifiedReads();
  ro.snapshot = b.snapshot;
  ro.fill_cache = false;  // don't evict the blocks clients read for ours
  std::string raw;
  for (const auto& u : b.keys) {
    leveldb::Status s = engine_->raw()->Get(ro, DataKey(u.key), &raw);
    StoredValue old;
    bool existed = s.ok() && DecodeValue(raw, &old);
    if (existed && old.in_blob) engine_->blobs()->AddGarbage(old.blob);
    // The writer counted the new value's expiry and assumed the key existed.
    if (!existed) dkeys++;
    if (existed && old.HasExpiry()) dexpires--;
  }
  engine_->AdjustCounts(dkeys, dexpires);
}

void KeyCounter::Recount(const Batch& b) {
  leveldb::ReadOptions ro = VerifiedReads();
  ro.snapshot = b.snapshot;
  ro.fill_cache = false;
  std::unique_ptr<leveldb::Iterator> it(engine_->raw()->NewIterator(ro));
  int64_t keys = 0, expires = 0;
  StoredValue v;
  for (it->Seek(std::string(1, kDataPrefix)); it->Valid() && it->key()[0] == kDataPrefix; it->Next()) {
    keys++;
    if (DecodeValue(std::string_view(it->value().data(), it->value().size()), &v) && v.HasExpiry()) expires++;
  }
  engine_->AdjustCounts(keys - static_cast<int64_t>(b.live_keys), expires - static_cast<int64_t>(b.live_expires));
}

bool KeyCounter::WaitResolved(uint64_t sequence, int timeout_ms) const {
  std::unique_lock<std::mutex> l(mu_);
  return done_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] {
    return (queue_.empty() && !busy_) || resolved_through_ >= sequence;
  });
}

void KeyCounter::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    // Drain the queue before stopping: a clean shutdown leaves exact counts.
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    l.unlock();
    if (b.recount) Recount(b);
    else Resolve(b);
    pending_keys_.fetch_sub(b.keys.size(), std::memory_order_relaxed);
    engine_->raw()->ReleaseSnapshot(b.snapshot);
    l.lock();
    busy_ = false;
    resolved_through_ = b.sequence;
    engine_->set_counted_through(queue_.empty() ? UINT64_MAX : b.sequence);
    done_cv_.notify_all();
  }
}

}  // namespace levee::storage
