#include "storage/checkpoint.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <filesystem>

#include "../test_util.h"
#include "storage/engine.h"

namespace levee::storage {
namespace {
namespace fs = std::filesystem;

TEST(CheckpointTest, CopyOpensWithTheDataOfTheMomentDespiteCompaction) {
  levee::testing::TempDir dir;
  EngineOptions o;
  o.path = dir.Sub("db");
  o.write_buffer_bytes = 64 << 10;  // small memtable: tables get written and compacted
  auto engine = std::move(Engine::Open(o).value());
  auto put = [&](int from, int to, const std::string& v, uint64_t seq) {
    leveldb::WriteBatch b;
    for (int i = from; i < to; i++) b.Put(DataKey("k" + std::to_string(i)), v);
    Engine::Commit c;
    c.sequence = seq;
    ASSERT_TRUE(engine->Write(&b, c, false).ok());
  };
  for (int round = 0; round < 20; round++) put(0, 500, std::string(200, 'a' + round % 3), round + 1);
  auto cp = std::move(engine->TakeCheckpoint().value());
  // Later writes and a full compaction must not change or delete what the
  // checkpoint holds.
  for (int round = 0; round < 20; round++) put(0, 500, std::string(200, 'z'), 100 + round);
  engine->raw()->CompactRange(nullptr, nullptr);
  fs::path copy = dir.Sub("copy");
  fs::create_directories(copy);
  for (const auto& f : cp->files()) {
    fs::path src = fs::path(cp->dir()) / f.name;
    ASSERT_TRUE(fs::exists(src)) << f.name << " was removed while held";
    fs::copy_file(src, copy / f.name);
    fs::resize_file(copy / f.name, f.size);
  }
  cp.reset();
  EngineOptions co;
  co.path = copy.string();
  co.create_if_missing = false;
  auto back = Engine::Open(co);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value()->applied_sequence(), 20u);
  std::string raw;
  ASSERT_TRUE(back.value()->raw()->Get(leveldb::ReadOptions(), DataKey("k7"), &raw).ok());
  EXPECT_EQ(raw, std::string(200, 'a' + 19 % 3));
}

}  // namespace
}  // namespace levee::storage
