#include "storage/key_filter.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include <pthread.h>

namespace levee::storage {

namespace {
// Below this many keys the filter is sized for this many anyway (1.25 MiB
// at 10 bits per key): a growing data set then does not rescan at once.
constexpr uint64_t kMinKeys = 1ull << 20;

uint64_t Mix(uint64_t x) {
  // splitmix64's finalizer: spreads the hash's bits for the probes.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

BloomBits::BloomBits(uint64_t capacity_keys, int bits_per_key)
    : capacity_(capacity_keys),
      // ln 2 bits per probe is optimal for a plain Bloom filter; a blocked
      // one loses a little to uneven blocks either way.
      probes_(std::clamp(static_cast<int>(std::lround(bits_per_key * 0.69)), 1, 16)),
      blocks_(std::max<uint64_t>(1, (capacity_keys * static_cast<uint64_t>(bits_per_key) + 511) / 512)),
      words_(blocks_ * kWordsPerBlock) {}

uint64_t BloomBits::Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

template <typename Fn>
bool BloomBits::ForEachProbe(uint64_t h, Fn&& fn) const {
  // The key's block, then probes_ bit positions inside it (9 bits each of a
  // mixed hash, re-mixed every 7 probes). Stops when fn returns false.
  const uint64_t block = static_cast<uint64_t>((static_cast<unsigned __int128>(h) * blocks_) >> 64);
  std::atomic<uint64_t>* w = const_cast<std::atomic<uint64_t>*>(&words_[block * kWordsPerBlock]);
  uint64_t x = Mix(h);
  for (int i = 0; i < probes_; i++) {
    if (i > 0 && i % 7 == 0) x = Mix(x + i);
    const unsigned bit = x & 511;
    x >>= 9;
    if (!fn(w[bit >> 6], 1ull << (bit & 63))) return false;
  }
  return true;
}

bool BloomBits::MayContain(uint64_t h) const {
  return ForEachProbe(h, [](const std::atomic<uint64_t>& word, uint64_t mask) {
    return (word.load(std::memory_order_acquire) & mask) != 0;
  });
}

bool BloomBits::Add(uint64_t h) {
  bool fresh = false;
  ForEachProbe(h, [&fresh](std::atomic<uint64_t>& word, uint64_t mask) {
    if ((word.load(std::memory_order_relaxed) & mask) == 0) {
      word.fetch_or(mask, std::memory_order_release);
      fresh = true;
    }
    return true;
  });
  if (fresh) added_.fetch_add(1, std::memory_order_relaxed);
  return fresh;
}

KeyFilter::KeyFilter(int bits_per_key, Scan scan, std::function<uint64_t()> live_keys)
    : bits_per_key_(bits_per_key), scan_(std::move(scan)), live_keys_(std::move(live_keys)) {
  thread_ = std::thread([this] { Run(); });
}

KeyFilter::~KeyFilter() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> l(run_mu_);
    stop_ = true;
  }
  run_cv_.notify_all();
  thread_.join();
}

uint64_t KeyFilter::SizeFor(uint64_t live) const { return std::max(kMinKeys, 2 * live); }

bool KeyFilter::MayContain(std::string_view key) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  if (serving_ == nullptr || serving_->MayContain(BloomBits::Hash(key))) return true;
  absent_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void KeyFilter::Add(std::string_view key) {
  const uint64_t h = BloomBits::Hash(key);
  if (building_ != nullptr) building_->Add(h);
  if (serving_ == nullptr) return;
  serving_->Add(h);
  // Full (growth, or new keys replacing deleted ones): scan again, sized
  // for the keys there are now. The old generation answers meanwhile.
  if (serving_->added() > serving_->capacity() && building_ == nullptr && !rescan_asked_.exchange(true)) {
    {
      std::lock_guard<std::mutex> l(run_mu_);
      rescan_ = true;
    }
    run_cv_.notify_all();
  }
}

void KeyFilter::Reset(const std::vector<std::string_view>& keep) {
  auto fresh = std::make_shared<BloomBits>(SizeFor(keep.size()), bits_per_key_);
  for (std::string_view k : keep) fresh->Add(BloomBits::Hash(k));
  std::unique_lock<std::shared_mutex> l(mu_);
  epoch_.fetch_add(1);
  building_.reset();
  serving_ = std::move(fresh);
}

bool KeyFilter::ready() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return serving_ != nullptr;
}

size_t KeyFilter::bytes() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return (serving_ ? serving_->bytes() : 0) + (building_ ? building_->bytes() : 0);
}

uint64_t KeyFilter::capacity() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return serving_ ? serving_->capacity() : 0;
}

void KeyFilter::Run() {
  pthread_setname_np(pthread_self(), "levee-keyscan");
  // A background scan: the foreground's reads and writes come first.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
  while (true) {
    {
      std::unique_lock<std::mutex> l(run_mu_);
      run_cv_.wait(l, [this] { return stop_ || rescan_; });
      if (stop_) return;
      rescan_ = false;
    }
    // Installed before the scan's snapshot is taken: every write from here
    // on adds to it too (see the header).
    auto bits = std::make_shared<BloomBits>(SizeFor(live_keys_()), bits_per_key_);
    uint64_t epoch;
    {
      std::unique_lock<std::shared_mutex> l(mu_);
      building_ = bits;
      epoch = epoch_.load();
    }
    BloomBits* b = bits.get();
    const bool complete = scan_([b](std::string_view key) { b->Add(BloomBits::Hash(key)); },
                                [this, epoch] { return stopping_.load() || epoch_.load() != epoch; });
    std::unique_lock<std::shared_mutex> l(mu_);
    rescan_asked_ = false;
    if (building_ != bits) continue;  // a Reset dropped it
    if (complete && epoch_.load() == epoch) {
      serving_ = std::move(building_);
      scans_.fetch_add(1, std::memory_order_relaxed);
    } else {
      building_.reset();
    }
  }
}

}  // namespace levee::storage
