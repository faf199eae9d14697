#include "storage/key_filter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.h"
#include "storage/engine.h"
#include "storage/key_counter.h"
#include "storage/write_group.h"

namespace levee::storage {
namespace {

// Polls cond every millisecond until it holds or 10 s pass.
bool Eventually(const std::function<bool()>& cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // poll interval
  }
  return true;
}

TEST(BloomBitsTest, NoFalseNegativesAndAboutOnePercentFalsePositives) {
  BloomBits bits(100000, 10);
  EXPECT_EQ(bits.bytes(), (100000 * 10 + 511) / 512 * 64);
  for (int i = 0; i < 100000; i++) bits.Add(BloomBits::Hash("key:" + std::to_string(i)));
  for (int i = 0; i < 100000; i++) ASSERT_TRUE(bits.MayContain(BloomBits::Hash("key:" + std::to_string(i)))) << i;
  int fp = 0;
  for (int i = 0; i < 100000; i++) fp += bits.MayContain(BloomBits::Hash("other:" + std::to_string(i)));
  EXPECT_LT(fp, 2000);  // 2%: a blocked filter at 10 bits per key measures about 1%
  EXPECT_GT(bits.added(), 99000u);  // about one fresh add per distinct key
  bits.Add(BloomBits::Hash("key:1"));
  EXPECT_LT(bits.added(), 100001u);
}

// A scan the test releases by hand, over a key list the test owns.
struct FakeScan {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> keys;
  bool release = false;
  int started = 0;
  bool Run(const std::function<void(std::string_view)>& add, const std::function<bool()>& stop) {
    std::unique_lock<std::mutex> l(mu);
    started++;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
    for (const auto& k : keys) add(k);
    return !stop();
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu);
    release = true;
    cv.notify_all();
  }
  void WaitStarted(int n) {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(10), [&] { return started >= n; }));
  }
};

TEST(KeyFilterTest, AnswersMaybeUntilTheScanEndsThenAbsentForKeysNeverSeen) {
  FakeScan scan;
  scan.keys = {"old1", "old2"};
  KeyFilter f(
      10, [&](const auto& add, const auto& stop) { return scan.Run(add, stop); }, [] { return 2; });
  scan.WaitStarted(1);
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(f.MayContain("never"));  // not ready: every key may exist
  {
    // A write while the scan runs: its key is not in the scan's snapshot.
    auto l = f.LockForWrite();
    f.Add("during");
  }
  scan.Release();
  ASSERT_TRUE(Eventually([&] { return f.ready(); }));
  EXPECT_EQ(f.scans_completed(), 1u);
  EXPECT_TRUE(f.MayContain("old1"));
  EXPECT_TRUE(f.MayContain("old2"));
  EXPECT_TRUE(f.MayContain("during"));
  EXPECT_FALSE(f.MayContain("never"));
  EXPECT_EQ(f.absent_answers(), 1u);
  {
    auto l = f.LockForWrite();
    f.Add("after");
  }
  EXPECT_TRUE(f.MayContain("after"));
  EXPECT_EQ(f.capacity(), 1u << 20);
  EXPECT_EQ(f.bytes(), (1u << 20) * 10 / 8);
}

TEST(KeyFilterTest, ResetForgetsOldKeysAndDropsAScanUnderway) {
  FakeScan scan;
  scan.keys = {"old"};
  scan.release = true;
  KeyFilter f(
      10, [&](const auto& add, const auto& stop) { return scan.Run(add, stop); }, [] { return 1; });
  ASSERT_TRUE(Eventually([&] { return f.ready(); }));
  EXPECT_TRUE(f.MayContain("old"));
  f.Reset({"kept"});
  EXPECT_TRUE(f.MayContain("kept"));
  EXPECT_FALSE(f.MayContain("old"));
  EXPECT_TRUE(f.ready());
}

TEST(KeyFilterTest, RescansWhenMoreKeysWereAddedThanItWasSizedFor) {
  FakeScan scan;
  scan.release = true;
  std::atomic<uint64_t> live{0};
  KeyFilter f(
      4, [&](const auto& add, const auto& stop) { return scan.Run(add, stop); }, [&] { return live.load(); });
  ASSERT_TRUE(Eventually([&] { return f.ready(); }));
  const uint64_t first = f.capacity();
  live = first + first / 2;
  {
    auto l = f.LockForWrite();
    for (uint64_t i = 0; i < live.load(); i++) f.Add("k" + std::to_string(i));
  }
  ASSERT_TRUE(Eventually([&] { return f.scans_completed() == 2; }));
  EXPECT_EQ(f.capacity(), 2 * live.load());
}

std::unique_ptr<Engine> OpenWithFilter(const std::string& path, size_t row_cache_bytes) {
  EngineOptions o;
  o.path = path;
  o.block_cache_bytes = 1 << 20;
  o.row_cache_bytes = row_cache_bytes;
  o.key_filter_bits_per_key = 10;
  auto opened = Engine::Open(o);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return std::move(opened.value());
}

StoredValue Str(std::string s) {
  StoredValue v;
  v.payload = std::move(s);
  return v;
}

// Writes prefix0..prefix(n-1) in one group of a fresh engine on path, then
// closes it: keys on disk for the next open's scan to find.
void WriteKeysAndClose(const std::string& path, const std::string& prefix, int n, uint64_t* seq) {
  auto engine = OpenWithFilter(path, 0);
  WriteGroup g(engine.get());
  for (int i = 0; i < n; i++) ASSERT_TRUE(g.Put(prefix + std::to_string(i), Str("v")).ok());
  ASSERT_TRUE(g.Commit(++*seq, false).ok());
}

TEST(KeyFilterTest, EngineAnswersMissingKeysFromTheFilterAndFindsEveryKeyOnDisk) {
  levee::testing::TempDir dir;
  uint64_t seq = 0;
  WriteKeysAndClose(dir.path(), "disk", 5000, &seq);
  // Reopened: the keys on disk come from the scan.
  auto engine = OpenWithFilter(dir.path(), 0);
  const KeyFilter* f = engine->key_filter();
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(Eventually([&] { return f->ready(); }));
  StoredValue v;
  bool found = false;
  for (int i = 0; i < 5000; i++) {
    ASSERT_TRUE(engine->Get("disk" + std::to_string(i), &v, &found).ok());
    ASSERT_TRUE(found) << i;
  }
  for (int i = 0; i < 1000; i++) {
    ASSERT_TRUE(engine->Get("missing" + std::to_string(i), &v, &found).ok());
    ASSERT_FALSE(found);
  }
  EXPECT_GT(f->absent_answers(), 950u);
  // FLUSHALL then a put in the same batch: only the put survives, in the
  // filter too.
  {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.FlushAll().ok());
    ASSERT_TRUE(g.Put("after-flush", Str("v")).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  }
  ASSERT_TRUE(engine->Get("after-flush", &v, &found).ok());
  EXPECT_TRUE(found);
  const uint64_t before = f->absent_answers();
  ASSERT_TRUE(engine->Get("disk1", &v, &found).ok());
  EXPECT_FALSE(found);
  EXPECT_EQ(f->absent_answers(), before + 1);  // forgotten by the flush: no lookup
}

TEST(KeyFilterTest, TheWriterCountsNewKeysWithoutTheCounter) {
  levee::testing::TempDir dir;
  auto engine = OpenWithFilter(dir.path(), 0);
  ASSERT_TRUE(Eventually([&] { return engine->key_filter()->ready(); }));
  KeyCounter counter(engine.get());
  {
    WriteGroup g(engine.get(), &counter);
    ASSERT_TRUE(g.Put("a", Str("1")).ok());  // never seen: known new
    ASSERT_TRUE(g.Commit(1, false).ok());
  }
  EXPECT_EQ(engine->known_keys(), 1);
  {
    WriteGroup g(engine.get(), &counter);
    ASSERT_TRUE(g.Put("a", Str("2")).ok());  // in the filter: maybe, left to the counter
    ASSERT_TRUE(g.Put("b", Str("2")).ok());  // new
    ASSERT_TRUE(g.Commit(2, false).ok());
  }
  counter.Drain();
  EXPECT_EQ(engine->key_count(), 2u);
}

// Under concurrency: a key whose write has committed is found by every read
// that starts afterwards, while the first scan is still running and after.
TEST(KeyFilterTest, NoReadStartedAfterACommitMissesTheKey) {
  levee::testing::TempDir dir;
  uint64_t seq = 0;
  WriteKeysAndClose(dir.path(), "pre", 20000, &seq);
  auto engine = OpenWithFilter(dir.path(), 1 << 20);  // the scan starts now, racing the writes below
  constexpr int kWrites = 20000;
  std::atomic<int> committed{0};
  std::atomic<bool> done{false};
  std::atomic<int> missed{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; r++) {
    readers.emplace_back([&, r] {
      for (int i = r; !done.load(); i++) {
        const int n = committed.load();
        if (n == 0) continue;
        const int k = i % n;
        StoredValue v;
        bool found = false;
        if (engine->Get("new" + std::to_string(k), &v, &found).ok() && !found) missed++;
        if (engine->Get("pre" + std::to_string(i % 20000), &v, &found).ok() && !found) missed++;
      }
    });
  }
  for (int i = 0; i < kWrites; i++) {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put("new" + std::to_string(i), Str("v")).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
    committed = i + 1;
  }
  ASSERT_TRUE(Eventually([&] { return engine->key_filter()->ready(); }));
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(missed.load(), 0);
}

}  // namespace
}  // namespace levee::storage
