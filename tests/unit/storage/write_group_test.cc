#include "storage/write_group.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "engine_test_util.h"
#include "storage/engine.h"
#include "storage/key_counter.h"

#include <leveldb/db.h>
#include <functional>

namespace levee::storage {
namespace {

using test::OpenEngine;
using test::Str;

std::vector<std::string> Keys(DataView& view, bool reverse = false, std::string start = "") {
  std::vector<std::string> out;
  auto fn = [&](std::string_view k, const StoredValue&) {
    out.emplace_back(k);
    return true;
  };
  EXPECT_TRUE((reverse ? view.ScanReverse(start, fn) : view.Scan(start, fn)).ok());
  return out;
}

TEST(WriteGroupTest, CommandsInAGroupSeeEarlierWritesAndCountsAreExact) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path());
  WriteGroup g(engine.get());
  ASSERT_TRUE(g.Put("a", Str("1")).ok());
  ASSERT_TRUE(g.Put("b", Str("2", 5000)).ok());
  ASSERT_TRUE(g.Put("a", Str("3")).ok());  // overwrite: no new key
  StoredValue v;
  bool found;
  ASSERT_TRUE(g.Get("a", &v, &found).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(v.payload, "3");
  EXPECT_EQ(g.KeyCount(), 2u);
  ASSERT_TRUE(engine->Get("a", &v, &found).ok());
  EXPECT_FALSE(found);  // nothing reaches LevelDB before Commit
  ASSERT_TRUE(g.Commit(7, false).ok());
  EXPECT_EQ(engine->applied_sequence(), 7u);
  EXPECT_EQ(engine->key_count(), 2u);
  EXPECT_EQ(engine->expires_count(), 1u);

  bool deleted;
  ASSERT_TRUE(g.Delete("b", &deleted).ok());
  EXPECT_TRUE(deleted);
  ASSERT_TRUE(g.Delete("zzz", &deleted).ok());
  EXPECT_FALSE(deleted);
  ASSERT_TRUE(g.Commit(8, false).ok());
  EXPECT_EQ(engine->key_count(), 1u);
  EXPECT_EQ(engine->expires_count(), 0u);
}

TEST(WriteGroupTest, ScansMergeStagedWritesInBothDirections) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path());
  WriteGroup g(engine.get());
  for (auto k : {"b", "d", "f"}) ASSERT_TRUE(g.Put(k, Str("x")).ok());
  ASSERT_TRUE(g.Commit(1, false).ok());
  ASSERT_TRUE(g.Put("a", Str("x")).ok());
  ASSERT_TRUE(g.Put("e", Str("x")).ok());
  bool deleted;
  ASSERT_TRUE(g.Delete("d", &deleted).ok());
  EXPECT_EQ(Keys(g), (std::vector<std::string>{"a", "b", "e", "f"}));
  EXPECT_EQ(Keys(g, true), (std::vector<std::string>{"f", "e", "b", "a"}));
  EXPECT_EQ(Keys(g, true, "e"), (std::vector<std::string>{"e", "b", "a"}));
  EXPECT_EQ(Keys(g, false, "c"), (std::vector<std::string>{"e", "f"}));
  EngineView view(engine.get());
  EXPECT_EQ(Keys(view, true), (std::vector<std::string>{"f", "d", "b"}));
  EXPECT_EQ(Keys(view, true, "c"), (std::vector<std::string>{"b"}));
}

TEST(WriteGroupTest, FlushAllInsideAGroupHidesEverythingBefore) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path());
  WriteGroup g(engine.get());
  ASSERT_TRUE(g.Put("old", Str("x", 99)).ok());
  ASSERT_TRUE(g.Commit(1, false).ok());
  ASSERT_TRUE(g.Put("staged", Str("x")).ok());
  ASSERT_TRUE(g.FlushAll().ok());
  ASSERT_TRUE(g.Put("new", Str("y")).ok());
  EXPECT_EQ(Keys(g), (std::vector<std::string>{"new"}));
  EXPECT_EQ(g.KeyCount(), 1u);
  ASSERT_TRUE(g.Commit(2, false).ok());
  EngineView view(engine.get());
  EXPECT_EQ(Keys(view), (std::vector<std::string>{"new"}));
  EXPECT_EQ(engine->key_count(), 1u);
  EXPECT_EQ(engine->expires_count(), 0u);
}

TEST(WriteGroupTest, ReplayingRecordedMutationsReachesTheSameState) {
  levee::testing::TempDir a, b;
  auto ea = OpenEngine(a.path());
  auto eb = OpenEngine(b.path());
  WriteGroup live(ea.get());
  std::vector<wal::Mutation> rec;
  live.set_recording(&rec);
  ASSERT_TRUE(live.Put("x", Str("1", 1234)).ok());
  ASSERT_TRUE(live.Put("y", Str("2")).ok());
  bool d;
  ASSERT_TRUE(live.Delete("x", &d).ok());
  ASSERT_TRUE(live.Delete("never", &d).ok());  // absent: nothing recorded
  ASSERT_TRUE(live.Commit(3, false).ok());
  EXPECT_EQ(rec.size(), 3u);

  WriteGroup replay(eb.get());
  for (const auto& m : rec) ASSERT_TRUE(replay.Apply(m).ok());
  ASSERT_TRUE(replay.Commit(3, false).ok());
  EngineView va(ea.get()), vb(eb.get());
  EXPECT_EQ(Keys(va), Keys(vb));
  EXPECT_EQ(ea->key_count(), eb->key_count());
  EXPECT_EQ(ea->expires_count(), eb->expires_count());
}

TEST(EngineTest, SecondOpenOfTheSameDirectoryIsRefusedWithAMessage) {
  levee::testing::TempDir dir;
  auto first = OpenEngine(dir.path());
  EngineOptions o;
  o.path = dir.path();
  auto second = Engine::Open(o);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another levee process"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace levee::storage

namespace levee::storage {
namespace {

TEST(KeyCounterTest, BlindWritesAreCountedExactlyOffTheWriterPath) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path());
  KeyCounter counter(engine.get());
  uint64_t seq = 0;
  auto group = [&](const std::function<void(WriteGroup&)>& fn) {
    WriteGroup g(engine.get(), &counter);
    fn(g);
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  };
  group([](WriteGroup& g) {
    for (auto k : {"a", "b", "c"}) ASSERT_TRUE(g.Put(k, Str("1")).ok());
    ASSERT_TRUE(g.Put("ttl", Str("1", 99999)).ok());
  });
  group([](WriteGroup& g) {
    ASSERT_TRUE(g.Put("a", Str("2")).ok());         // overwrite: not a new key
    ASSERT_TRUE(g.Put("ttl", Str("2")).ok());       // overwrite drops the expiry
    ASSERT_TRUE(g.Put("d", Str("2", 99999)).ok());  // new, with expiry
    ASSERT_TRUE(g.Put("d", Str("3", 99999)).ok());  // again in the same group
    bool deleted;
    ASSERT_TRUE(g.Delete("b", &deleted).ok());
    ASSERT_TRUE(deleted);
  });
  counter.Drain();
  EXPECT_EQ(engine->key_count(), 4u);  // a c ttl d
  EXPECT_EQ(engine->expires_count(), 1u);
  EXPECT_EQ(engine->counted_through(), UINT64_MAX);

  group([](WriteGroup& g) { ASSERT_TRUE(g.Put("e", Str("1")).ok()); });
  group([](WriteGroup& g) {
    ASSERT_TRUE(g.FlushAll().ok());  // drains the pending correction first
    ASSERT_TRUE(g.Put("f", Str("1", 5)).ok());
  });
  counter.Drain();
  EXPECT_EQ(engine->key_count(), 1u);
  EXPECT_EQ(engine->expires_count(), 1u);
}

TEST(KeyCounterTest, RecountCorrectsCountsLeftUnsettled) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path());
  {
    WriteGroup g(engine.get());
    for (int i = 0; i < 100; i++) ASSERT_TRUE(g.Put("k" + std::to_string(i), Str("v", i % 4 ? 0 : 999)).ok());
    ASSERT_TRUE(g.Commit(1, false).ok());
  }
  engine->AdjustCounts(-30, 7);  // as if corrections were lost in a crash
  KeyCounter counter(engine.get());
  counter.EnqueueRecount(engine->raw()->GetSnapshot(), 1, engine->key_count(), engine->expires_count());
  counter.Drain();
  EXPECT_EQ(engine->key_count(), 100u);
  EXPECT_EQ(engine->expires_count(), 25u);
}

}  // namespace
}  // namespace levee::storage
