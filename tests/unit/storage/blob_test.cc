#include "storage/blob.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "../test_util.h"
#include "engine_test_util.h"
#include "storage/blob_gc.h"
#include "storage/checkpoint.h"
#include "storage/digest.h"
#include "storage/engine.h"
#include "storage/write_group.h"

namespace levee::storage {
namespace {
namespace fs = std::filesystem;

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST(BlobFilesTest, ValuesReadBackAndDamageIsNamedNotServed) {
  levee::testing::TempDir dir;
  BlobFiles b(dir.path(), nullptr);
  ASSERT_TRUE(b.Open().ok());
  std::string big(5000, 'v');
  auto r1 = b.Append("k1", big);
  auto r2 = b.Append("k2", "second");
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(r2.value().offset, BlobFiles::RecordSize(2, big.size()));
  std::string v;
  ASSERT_TRUE(b.Read(r1.value(), "k1", &v).ok());
  EXPECT_EQ(v, big);
  ASSERT_TRUE(b.Read(r2.value(), "k2", &v).ok());
  EXPECT_EQ(v, "second");
  // A reference read for another key is refused.
  Status st = b.Read(r1.value(), "k2", &v);
  EXPECT_TRUE(st.IsCorruption()) << st.ToString();

  std::string path = (fs::path(dir.path()) / BlobFileName(r1.value().file)).string();
  FlipByte(path, r1.value().offset + 100);
  st = b.Read(r1.value(), "k1", &v);
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(BlobFileName(r1.value().file)), std::string::npos) << st.message();
  ASSERT_TRUE(b.Read(r2.value(), "k2", &v).ok());  // the other record is untouched

  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(r2.value().offset + 5)), 0);
  st = b.Read(r2.value(), "k2", &v);
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("cut short"), std::string::npos) << st.message();
}

TEST(BlobFilesTest, TheValueCacheServesWrittenAndReadValuesUntilTheyAreGarbage) {
  levee::testing::TempDir dir;
  const std::string big(5000, 'c');
  BlobRef r1, r2;
  {
    BlobFiles b(dir.path(), nullptr, 64ull << 20, 1 << 20);
    ASSERT_TRUE(b.Open().ok());
    std::string encoded = "hdr" + big;
    auto a1 = b.AppendCached("k1", encoded, 3);
    auto a2 = b.Append("k2", big);  // a collector move: not cached
    ASSERT_TRUE(a1.ok() && a2.ok());
    r1 = a1.value();
    r2 = a2.value();
    BlobStats s = b.Stats();
    EXPECT_EQ(s.cache_capacity, 1u << 20);
    EXPECT_GT(s.cache_bytes, big.size());

    // Damage both records on disk: the cached one is still served (it was
    // checked when written), the other is refused from the file.
    std::string path = (fs::path(dir.path()) / BlobFileName(r1.file)).string();
    FlipByte(path, r1.offset + 100);
    FlipByte(path, r2.offset + 100);
    std::string v;
    ASSERT_TRUE(b.Read(r1, "k1", &v).ok());
    EXPECT_EQ(v, big);
    EXPECT_TRUE(b.Read(r2, "k2", &v).IsCorruption());
    s = b.Stats();
    EXPECT_EQ(s.cache_hits, 1u);
    EXPECT_EQ(s.cache_misses, 1u);
    // A cached entry is only served for its own key.
    EXPECT_TRUE(b.Read(r1, "k2", &v).IsCorruption());

    // Once the value is garbage it leaves the cache, and a read (of a
    // snapshot, say) goes to the file.
    b.AddGarbage(r1);
    EXPECT_TRUE(b.Read(r1, "k1", &v).IsCorruption());
    FlipByte(path, r1.offset + 100);  // repaired
    FlipByte(path, r2.offset + 100);
  }
  // A fresh instance fills its cache on reads; the cache never holds more
  // than its capacity.
  BlobFiles b(dir.path(), nullptr, 64ull << 20, 1 << 20);
  ASSERT_TRUE(b.Open().ok());
  std::string v;
  // A full pass (a backup's digest) reads without filling the cache.
  ASSERT_TRUE(b.Read(r1, "k1", &v, /*fill_cache=*/false).ok());
  EXPECT_EQ(v, big);
  EXPECT_EQ(b.Stats().cache_bytes, 0u);
  v.clear();
  ASSERT_TRUE(b.Read(r1, "k1", &v).ok());
  ASSERT_TRUE(b.Read(r1, "k1", &v).ok());
  EXPECT_EQ(v, big);
  EXPECT_EQ(b.Stats().cache_hits, 1u);
  EXPECT_EQ(b.Stats().cache_misses, 2u);
  for (int i = 0; i < 400; i++) ASSERT_TRUE(b.AppendCached("k" + std::to_string(i), big, 0).ok());
  EXPECT_LE(b.Stats().cache_bytes, 1u << 20);
  EXPECT_GT(b.Stats().cache_bytes, 512u << 10);

  // The collector's move keeps a cached value cached, at its new place only.
  auto m = b.AppendCached("moved", big, 0);
  ASSERT_TRUE(m.ok());
  auto moved = b.Move(m.value(), "moved", big);
  ASSERT_TRUE(moved.ok());
  uint64_t hits = b.Stats().cache_hits, misses = b.Stats().cache_misses;
  ASSERT_TRUE(b.Read(moved.value(), "moved", &v).ok());
  ASSERT_TRUE(b.Read(m.value(), "moved", &v).ok());
  EXPECT_EQ(v, big);
  EXPECT_EQ(b.Stats().cache_hits, hits + 1);
  EXPECT_EQ(b.Stats().cache_misses, misses + 1);

  // With cache-on-write off only reads fill the cache, and a move keeps
  // what a read put there.
  b.set_cache_on_write(false);
  auto w = b.AppendCached("off", big, 0);
  ASSERT_TRUE(w.ok());
  hits = b.Stats().cache_hits;
  misses = b.Stats().cache_misses;
  ASSERT_TRUE(b.Read(w.value(), "off", &v).ok());
  auto w2 = b.Move(w.value(), "off", big);
  ASSERT_TRUE(w2.ok());
  ASSERT_TRUE(b.Read(w2.value(), "off", &v).ok());
  EXPECT_EQ(v, big);
  EXPECT_EQ(b.Stats().cache_misses, misses + 1);
  EXPECT_EQ(b.Stats().cache_hits, hits + 1);

  // FLUSHALL: every value is dead and the cache's memory is given back.
  b.MarkAllGarbage();
  EXPECT_EQ(b.Stats().cache_bytes, 0u);

  // No cache: nothing counted.
  BlobFiles none(dir.path(), nullptr);
  ASSERT_TRUE(none.Open().ok());
  ASSERT_TRUE(none.Read(r2, "k2", &v).ok());
  EXPECT_EQ(none.Stats().cache_capacity, 0u);
  EXPECT_EQ(none.Stats().cache_hits + none.Stats().cache_misses, 0u);
}

TEST(BlobFilesTest, ScanStopsAtATornTailAndFilesRollAtTheirSize) {
  levee::testing::TempDir dir;
  BlobFiles b(dir.path(), nullptr, /*file_bytes=*/10000);
  ASSERT_TRUE(b.Open().ok());
  std::vector<BlobRef> refs;
  for (int i = 0; i < 10; i++) {
    auto r = b.Append("key" + std::to_string(i), std::string(3000, static_cast<char>('a' + i)));
    ASSERT_TRUE(r.ok());
    refs.push_back(r.value());
  }
  // 3012+ bytes a record, a new file once one passes 10000: 4 records each.
  auto files = b.Files();
  ASSERT_EQ(files.size(), 3u);
  EXPECT_FALSE(files[0].active);
  EXPECT_TRUE(files[2].active);
  EXPECT_EQ(refs[4].file, files[1].number);
  EXPECT_EQ(refs[4].offset, 0u);

  std::string path = (fs::path(dir.path()) / BlobFileName(files[0].number)).string();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(files[0].bytes - 1)), 0);
  std::vector<std::string> keys;
  uint64_t torn = 0;
  ASSERT_TRUE(b.ScanFile(files[0].number,
                         [&](uint64_t, std::string_view k, std::string_view v) {
                           keys.emplace_back(k);
                           EXPECT_EQ(v.size(), 3000u);
                           return true;
                         },
                         &torn)
                  .ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"key0", "key1", "key2"}));
  EXPECT_EQ(torn, refs[3].offset);

  // A reopened store appends to a new file, after the old ones.
  BlobFiles again(dir.path(), nullptr);
  ASSERT_TRUE(again.Open().ok());
  auto r = again.Append("x", "y");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().file, files[2].number + 1);
  for (const auto& f : again.Files()) EXPECT_EQ(f.surveyed, f.active) << f.number;

  ASSERT_TRUE(b.Remove(files[1].number).ok());
  std::string v;
  EXPECT_EQ(b.Read(refs[4], "key4", &v).code(), Status::Code::kNotFound);
  EXPECT_FALSE(b.Remove(files[2].number).ok());  // being written
  EXPECT_TRUE(IsCheckpointFile(BlobFileName(7)));
}

TEST(BlobFilesTest, GarbageEstimatesOutliveARestartForFilesThatAreUnchanged) {
  levee::testing::TempDir dir;
  std::vector<BlobFileInfo> files;
  {
    BlobFiles b(dir.path(), nullptr, /*file_bytes=*/10000);
    ASSERT_TRUE(b.Open().ok());
    for (int i = 0; i < 10; i++) ASSERT_TRUE(b.Append("key" + std::to_string(i), std::string(3000, 'v')).ok());
    files = b.Files();
    ASSERT_EQ(files.size(), 3u);  // two sealed, one active
    b.SetGarbage(files[0].number, 5000);
    b.SetGarbage(files[1].number, 100);
    ASSERT_TRUE(b.SaveEstimates().ok());
  }
  auto reopened = [&] {
    auto b = std::make_unique<BlobFiles>(dir.path(), nullptr);
    EXPECT_TRUE(b->Open().ok());
    return b->Files();
  };
  auto again = reopened();
  EXPECT_TRUE(again[0].surveyed);
  EXPECT_EQ(again[0].garbage, 5000u);
  EXPECT_TRUE(again[1].surveyed);
  EXPECT_EQ(again[1].garbage, 100u);
  EXPECT_FALSE(again[2].surveyed);  // was being written: not saved, surveyed as before
  // A file whose size no longer matches is surveyed again.
  std::string path = (fs::path(dir.path()) / BlobFileName(files[1].number)).string();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(files[1].bytes - 10)), 0);
  again = reopened();
  EXPECT_TRUE(again[0].surveyed);
  EXPECT_FALSE(again[1].surveyed);
  // A damaged estimates file counts as none.
  {
    std::ofstream o(fs::path(dir.path()) / BlobFiles::kEstimatesFile, std::ios::trunc);
    o << "levee-blob-garbage 1\n" << files[0].number << " " << files[0].bytes << " x\n";
  }
  for (const auto& f : reopened()) EXPECT_FALSE(f.surveyed) << f.number;
  // Not a file a checkpoint copies.
  EXPECT_FALSE(IsCheckpointFile(BlobFiles::kEstimatesFile));
}

using test::OpenEngine;
using test::Str;

TEST(BlobEngineTest, LargeValuesLiveInBlobFilesAndReadBackTheSame) {
  std::string digest_inline, digest_blob;
  for (size_t min : {size_t{0}, size_t{100}}) {
    levee::testing::TempDir d;
    auto engine = OpenEngine(d.path(), min);
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put("small", Str("tiny")).ok());
    ASSERT_TRUE(g.Put("big", Str(std::string(500, 'b'), 9999999999999)).ok());
    ASSERT_TRUE(g.Put("big2", Str(std::string(300, 'c'))).ok());
    ASSERT_TRUE(g.Put("big2", Str(std::string(400, 'd'))).ok());  // the first copy is dead at once
    {
      // Later commands of the same group read what the earlier ones wrote
      // (an APPEND after a SET), large values included.
      StoredValue in_group;
      bool found_in_group = false;
      ASSERT_TRUE(g.Get("big2", &in_group, &found_in_group).ok());
      ASSERT_TRUE(found_in_group);
      EXPECT_EQ(in_group.payload, std::string(400, 'd'));
    }
    ASSERT_TRUE(g.Commit(1, false).ok());
    std::string raw;
    ASSERT_TRUE(engine->raw()->Get(leveldb::ReadOptions(), DataKey("big"), &raw).ok());
    if (min > 0) {
      EXPECT_LT(raw.size(), 40u);  // a reference, not the value
    }
    StoredValue v;
    bool found;
    ASSERT_TRUE(engine->Get("big", &v, &found).ok());
    ASSERT_TRUE(found);
    EXPECT_EQ(v.payload, std::string(500, 'b'));
    EXPECT_EQ(v.expire_at_ms, 9999999999999);
    ASSERT_TRUE(engine->Get("big2", &v, &found).ok());
    EXPECT_EQ(v.payload, std::string(400, 'd'));
    if (min > 0) {
      BlobStats s = engine->blobs()->Stats();
      EXPECT_EQ(s.files, 1u);
      EXPECT_EQ(s.garbage, BlobFiles::RecordSize(0, 300));  // the overwritten copy, less its key
    }
    // Scans pass large values without reading them; Load reads them. The
    // digest depends only on the data.
    EngineView view(engine.get());
    std::vector<std::string> seen;
    int unread = 0;
    ASSERT_TRUE(view.Scan("", [&](std::string_view k, const StoredValue& sv) {
                      StoredValue full = sv;
                      if (sv.in_blob) unread++;
                      EXPECT_TRUE(view.Load(k, &full).ok());
                      seen.push_back(std::string(k) + "=" + std::to_string(full.payload.size()));
                      return true;
                    }).ok());
    EXPECT_EQ(unread, min > 0 ? 2 : 0);
    EXPECT_EQ(seen, (std::vector<std::string>{"big=500", "big2=400", "small=4"}));
    auto it = engine->NewIterator();
    auto dg = DigestData(it.get(), engine->blobs(), 0);
    ASSERT_TRUE(dg.ok()) << dg.status().ToString();
    (min == 0 ? digest_inline : digest_blob) = dg.value();
    // Deleting a blob value makes its record dead.
    WriteGroup g2(engine.get());
    bool deleted;
    ASSERT_TRUE(g2.Delete("big", &deleted).ok());
    EXPECT_TRUE(deleted);
    ASSERT_TRUE(g2.Commit(2, false).ok());
    ASSERT_TRUE(engine->Get("big", &v, &found).ok());
    EXPECT_FALSE(found);
  }
  EXPECT_EQ(digest_inline, digest_blob);
}

TEST(BlobEngineTest, CollectorMovesLiveValuesAndRemovesDeadFiles) {
  levee::testing::TempDir dir;
  auto engine = OpenEngine(dir.path(), 100, /*file_bytes=*/20000);
  BlobCollector gc(engine.get(), [](const std::function<void()>& fn) { fn(); });
  gc.set_garbage_ratio(0.5);
  uint64_t seq = 0;
  auto put = [&](int i, char c) {
    WriteGroup g(engine.get());
    ASSERT_TRUE(g.Put("k" + std::to_string(i), Str(std::string(1000, c))).ok());
    ASSERT_TRUE(g.Commit(++seq, false).ok());
  };
  for (int i = 0; i < 60; i++) put(i, 'a');
  // Overwrite most keys: the early files become mostly dead.
  for (int i = 0; i < 60; i++) {
    if (i % 5 != 0) put(i, 'b');
  }
  uint64_t before = engine->blobs()->Stats().bytes;
  std::vector<uint64_t> first_files;
  for (const auto& f : engine->blobs()->Files()) {
    if (!f.active) first_files.push_back(f.number);
  }
  // The values never overwritten ('a' in every fifth key) sit in the first
  // files; has the collector moved any of them yet?
  auto moved = [&] {
    for (int i = 0; i < 60; i += 5) {
      std::string raw;
      StoredValue v;
      if (engine->raw()->Get(leveldb::ReadOptions(), DataKey("k" + std::to_string(i)), &raw).ok() &&
          DecodeValue(raw, &v) && v.in_blob && v.blob.file > first_files.back()) {
        return true;
      }
    }
    return false;
  };
  auto it = engine->NewIterator();  // an old reader: the files it may read must stay
  std::thread passes([&] {
    for (int pass = 0; pass < 40; pass++) EXPECT_TRUE(gc.RunPass().ok());
  });
  // Poll, with a deadline, for the first move.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!moved() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(moved());
  // Moved, but the file stays while the older iterator lives.
  EXPECT_EQ(gc.stats().files_removed.load(), 0u);
  for (uint64_t n : first_files) EXPECT_TRUE(fs::exists(fs::path(dir.path()) / BlobFileName(n))) << n;
  it.reset();
  passes.join();
  EXPECT_GT(gc.stats().files_removed.load(), 0u);
  EXPECT_GT(gc.stats().bytes_relocated.load(), 0u);
  EXPECT_LT(engine->blobs()->Stats().bytes, before);
  for (int i = 0; i < 60; i++) {
    StoredValue v;
    bool found;
    ASSERT_TRUE(engine->Get("k" + std::to_string(i), &v, &found).ok()) << i;
    ASSERT_TRUE(found);
    EXPECT_EQ(v.payload, std::string(1000, i % 5 == 0 ? 'a' : 'b')) << i;
  }
}

TEST(BlobEngineTest, AReopenedEngineSurveysOldFilesBeforeCollectingThem) {
  levee::testing::TempDir dir;
  {
    auto engine = OpenEngine(dir.path(), 100, 20000);
    uint64_t seq = 0;
    for (char c : {'a', 'b', 'c'}) {
      for (int i = 0; i < 20; i++) {
        WriteGroup g(engine.get());
        ASSERT_TRUE(g.Put("k" + std::to_string(i), Str(std::string(1000, c))).ok());
        ASSERT_TRUE(g.Commit(++seq, false).ok());
      }
    }
  }
  uint64_t garbage = 0;
  {
    auto engine = OpenEngine(dir.path(), 100, 20000);
    EXPECT_EQ(engine->blobs()->Stats().garbage, 0u);  // not known yet
    BlobCollector gc(engine.get(), [](const std::function<void()>& fn) { fn(); });
    for (int pass = 0; pass < 20; pass++) ASSERT_TRUE(gc.RunPass().ok());
    EXPECT_GT(gc.stats().surveys.load(), 0u);
    EXPECT_GT(gc.stats().files_removed.load(), 0u);
    for (int i = 0; i < 20; i++) {
      StoredValue v;
      bool found;
      ASSERT_TRUE(engine->Get("k" + std::to_string(i), &v, &found).ok());
      EXPECT_EQ(v.payload, std::string(1000, 'c'));
    }
    gc.Start();
    gc.Stop();  // saves the estimates
    garbage = engine->blobs()->Stats().garbage;
  }
  // The next start knows them: no survey.
  auto engine = OpenEngine(dir.path(), 100, 20000);
  ASSERT_FALSE(engine->blobs()->Files().empty());
  for (const auto& f : engine->blobs()->Files()) EXPECT_TRUE(f.surveyed || f.active) << f.number << " bytes " << f.bytes;
  EXPECT_EQ(engine->blobs()->Stats().garbage, garbage);
  BlobCollector gc(engine.get(), [](const std::function<void()>& fn) { fn(); });
  ASSERT_TRUE(gc.RunPass().ok());
  EXPECT_EQ(gc.stats().surveys.load(), 0u);
}

}  // namespace
}  // namespace levee::storage

namespace levee::storage {
namespace {

TEST(ValueEncodingTest, PayloadAndReferenceFormsDecodeFromViewsAndOwnedBytes) {
  StoredValue v = Str("hello world", 1234567);
  std::string enc;
  EncodeValue(v, &enc);
  EXPECT_EQ(ValueHeaderSize(enc), 10u);
  StoredValue a, b;
  ASSERT_TRUE(DecodeValue(std::string_view(enc), &a));
  ASSERT_TRUE(DecodeValue(std::string(enc), &b));
  for (const StoredValue* d : {&a, &b}) {
    EXPECT_EQ(d->payload, "hello world");
    EXPECT_EQ(d->expire_at_ms, 1234567);
    EXPECT_FALSE(d->in_blob);
  }
  std::string ref = EncodeBlobValue(enc, BlobRef{3, 70000, 11});
  ASSERT_TRUE(DecodeValue(std::string(ref), &b));
  EXPECT_TRUE(b.in_blob);
  EXPECT_EQ(b.blob, (BlobRef{3, 70000, 11}));
  EXPECT_EQ(b.expire_at_ms, 1234567);
  EXPECT_TRUE(b.payload.empty());
  // Unknown flag bits, a cut expiry and trailing bytes after a reference are refused.
  std::string bad = enc;
  bad[1] = static_cast<char>(bad[1] | 4);
  EXPECT_FALSE(DecodeValue(std::string_view(bad), &a));
  EXPECT_FALSE(DecodeValue(std::string(enc.substr(0, 6)), &a));
  EXPECT_FALSE(DecodeValue(ref + "x", &a));
}

}  // namespace
}  // namespace levee::storage
