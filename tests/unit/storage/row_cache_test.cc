#include "storage/row_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.h"
#include "engine_test_util.h"
#include "storage/engine.h"
#include "storage/key_counter.h"
#include "storage/write_group.h"

namespace levee::storage {
namespace {

using test::Str;
using Result = RowCache::Result;

std::unique_ptr<Engine> OpenWithRowCache(const std::string& path) {
  EngineOptions o;
  o.path = path;
  o.row_cache_bytes = 1 << 20;
  auto opened = Engine::Open(o);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return std::move(opened.value());
}

TEST(RowCacheTest, FillsAreServedAndAbsentKeysAreRemembered) {
  RowCache c(1 << 20, 64);
  std::string v;
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
  c.Fill("dk", "value", c.Ticket("dk"));
  c.FillAbsent("dgone", c.Ticket("dgone"));
  EXPECT_EQ(c.Lookup("dk", &v), Result::kPresent);
  EXPECT_EQ(v, "value");
  EXPECT_EQ(c.Lookup("dgone", &v), Result::kAbsent);
  c.Fill("dbig", std::string(65, 'x'), c.Ticket("dbig"));  // over max_value_bytes
  EXPECT_EQ(c.Lookup("dbig", &v), Result::kMiss);
  EXPECT_EQ(c.hits(), 2u);
  EXPECT_EQ(c.misses(), 2u);
  EXPECT_GT(c.bytes(), 0u);
  c.Clear();
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
}

TEST(RowCacheTest, AValueReadBeforeACommitIsNeverInsertedAfterIt) {
  RowCache c(1 << 20, 64);
  std::string v;
  // The fill lands before the writer's BeginWrite: the write erases it.
  uint64_t t = c.Ticket("dk");
  c.Fill("dk", "old", t);
  c.BeginWrite("dk");
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
  c.EndWrite("dk");
  // The reader read before the commit and fills while it is in flight.
  t = c.Ticket("dk");
  c.BeginWrite("dk");
  c.Fill("dk", "old", t);
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
  // ... or after it ended: the version moved.
  c.EndWrite("dk");
  c.Fill("dk", "old", t);
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
  // A ticket taken while a write is in flight is no good after it either
  // (the read may have missed the commit).
  c.BeginWrite("dk");
  t = c.Ticket("dk");
  c.EndWrite("dk");
  c.FillAbsent("dk", t);
  EXPECT_EQ(c.Lookup("dk", &v), Result::kMiss);
  // A ticket taken after the write: the fill stays.
  t = c.Ticket("dk");
  c.Fill("dk", "new", t);
  EXPECT_EQ(c.Lookup("dk", &v), Result::kPresent);
  EXPECT_EQ(v, "new");
}

TEST(RowCacheTest, EngineWritesAndTheCollectorsWritesInvalidate) {
  levee::testing::TempDir dir;
  auto engine = OpenWithRowCache(dir.path());
  ASSERT_NE(engine->rows(), nullptr);
  StoredValue v;
  bool found = true;
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_FALSE(found);
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());  // the absent entry
  EXPECT_FALSE(found);
  EXPECT_EQ(engine->rows()->hits(), 1u);
  uint64_t seq = 0;
  auto put = [&](const std::string& key, const std::string& value) {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put(key, Str(value)).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  };
  put("k", "1");
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());  // written through: a hit
  ASSERT_TRUE(found);
  EXPECT_EQ(v.payload, "1");
  EXPECT_EQ(engine->rows()->hits(), 2u);
  EXPECT_EQ(engine->rows()->misses(), 1u);
  // With on-write off a write only removes its key; the read fills it.
  engine->set_row_cache_on_write(false);
  put("k", "1b");
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_EQ(v.payload, "1b");
  EXPECT_EQ(engine->rows()->misses(), 2u);
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_EQ(v.payload, "1b");
  EXPECT_EQ(engine->rows()->hits(), 3u);
  engine->set_row_cache_on_write(true);
  put("k", "2");
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_EQ(v.payload, "2");
  // A batch outside the log (the blob collector's moved references).
  leveldb::WriteBatch wb;
  std::string enc;
  EncodeValue(Str("3"), &enc);
  wb.Put(DataKey("k"), enc);
  ASSERT_TRUE(engine->WriteUnsequenced(&wb, false).ok());
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_EQ(v.payload, "3");
  {
    WriteGroup g(engine.get());
    bool deleted = false;
    ASSERT_TRUE(g.Delete("k", &deleted).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  }
  ASSERT_TRUE(engine->Get("k", &v, &found).ok());
  EXPECT_FALSE(found);
  // A key written twice in one batch ends as the last write left it.
  {
    WriteGroup g(engine.get());
    bool deleted = false;
    ASSERT_TRUE(g.Put("twice", Str("1")).ok());
    ASSERT_TRUE(g.Delete("twice", &deleted).ok());
    ASSERT_TRUE(g.Put("again", Str("1")).ok());
    ASSERT_TRUE(g.Delete("again", &deleted).ok());
    ASSERT_TRUE(g.Put("again", Str("2")).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  }
  ASSERT_TRUE(engine->Get("twice", &v, &found).ok());
  EXPECT_FALSE(found);
  ASSERT_TRUE(engine->Get("again", &v, &found).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(v.payload, "2");
  // FLUSHALL gives the memory back.
  put("a", "x");
  ASSERT_TRUE(engine->Get("a", &v, &found).ok());
  EXPECT_GT(engine->rows()->bytes(), 0u);
  {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.FlushAll().ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  }
  EXPECT_EQ(engine->rows()->bytes(), 0u);
  ASSERT_TRUE(engine->Get("a", &v, &found).ok());
  EXPECT_FALSE(found);
}

TEST(RowCacheTest, TheWriterLearnsFromTheCacheWhetherAKeyExisted) {
  levee::testing::TempDir dir;
  auto engine = OpenWithRowCache(dir.path());
  {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put("a", Str("1", 99999)).ok());
    ASSERT_TRUE(g.Commit(1, false).ok());  // written through
  }
  StoredValue v;
  bool found = true;
  ASSERT_TRUE(engine->Get("b", &v, &found).ok());  // cached as absent
  ASSERT_FALSE(found);
  KeyCounter counter(engine.get());
  {
    WriteGroup g(engine.get(), &counter);
    ASSERT_TRUE(g.Put("a", Str("2")).ok());  // cached: existed, with an expiry
    ASSERT_TRUE(g.Put("b", Str("2")).ok());  // cached: absent
    ASSERT_TRUE(g.Put("c", Str("2")).ok());  // unknown: left to the counter
    ASSERT_TRUE(g.Commit(2, false).ok());
  }
  // The writer's own count already has b and knows a lost its expiry; c is
  // counted as existing until the counter has looked (it does not).
  EXPECT_EQ(engine->known_keys(), 2);
  EXPECT_EQ(engine->known_expires(), 0);
  counter.Drain();
  EXPECT_EQ(engine->key_count(), 3u);
  EXPECT_EQ(engine->expires_count(), 0u);
}

// The property the cache must keep under concurrency: once a write has
// committed, no read that starts afterwards returns an older value.
TEST(RowCacheTest, NoReadStartedAfterACommitSeesAnOlderValue) {
  levee::testing::TempDir dir;
  auto engine = OpenWithRowCache(dir.path());
  constexpr int kKeys = 4;  // few keys: readers and the writer collide often
  constexpr int kWrites = 20000;
  std::atomic<int> committed[kKeys];
  for (auto& c : committed) c = 0;
  std::atomic<bool> done{false};
  std::atomic<int> stale{0}, reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; r++) {
    readers.emplace_back([&, r] {
      for (int i = r; !done.load(); i++) {
        const int k = i % kKeys;
        const int floor = committed[k].load();
        StoredValue v;
        bool found = false;
        if (!engine->Get("key" + std::to_string(k), &v, &found).ok()) continue;
        const int got = found ? std::stoi(v.payload) : 0;
        if (got < floor) stale++;
        reads++;
      }
    });
  }
  uint64_t seq = 0;
  for (int i = 1; i <= kWrites; i++) {
    const int k = i % kKeys;
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put("key" + std::to_string(k), Str(std::to_string(i))).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
    committed[k] = i;
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(stale.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_GT(engine->rows()->hits(), 0u);
}

}  // namespace
}  // namespace levee::storage
