#include "backup/object.h"

#include <gtest/gtest.h>

#include "backup/names.h"
#include "backup/repo.h"
#include "backup/ops.h"

namespace levee::backup {
namespace {

std::shared_ptr<const Key> TestKey(char fill) { return Key::FromBytes(std::string(32, fill)); }

TEST(Object, PlainRoundTripAndCompression) {
  std::string text(100000, 'a');
  std::string stored = EncodeObject(text, Compression::kIfSmaller, nullptr);
  EXPECT_LT(stored.size(), text.size() / 10);
  auto back = DecodeObject(stored, nullptr, "obj");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), text);
  std::string never = EncodeObject(text, Compression::kNever, nullptr);
  EXPECT_EQ(never.size(), text.size() + 5);
}

TEST(Object, LargeObjectsAreCompressedOnlyWhenTheirSamplesCompress) {
  // 4 MiB of random bytes: stored as they are.
  std::string noise(4 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : noise) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  EXPECT_EQ(EncodeObject(noise, Compression::kIfSmaller, nullptr).size(), noise.size() + 5);
  // The same size of repetitive records with random ids: compressed, and
  // read back whole.
  std::string records;
  for (int i = 0; records.size() < (4u << 20); i++) {
    records += "{\"user\":" + std::to_string(i * 7919 % 100003) + ",\"status\":\"active\",\"plan\":\"free\"}\n";
  }
  std::string stored = EncodeObject(records, Compression::kIfSmaller, nullptr);
  EXPECT_LT(stored.size(), records.size() / 4);
  auto back = DecodeObject(stored, nullptr, "obj");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), records);
}

TEST(Object, EncryptedRoundTripAcrossMessages) {
  auto key = TestKey('k');
  std::string data;
  for (int i = 0; i < 3 * (1 << 20) + 17; i++) data.push_back(static_cast<char>(i * 7));
  std::string stored = EncodeObject(data, Compression::kNever, key.get());
  EXPECT_EQ(stored.find(data.substr(1000, 64)), std::string::npos);
  auto back = DecodeObject(stored, key.get(), "obj");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), data);
  std::string id;
  ASSERT_TRUE(ObjectKeyId(stored, &id));
  EXPECT_EQ(id, key->id());
}

TEST(Object, WrongMissingKeyAndDamageAreCleanErrors) {
  auto key = TestKey('k'), other = TestKey('o');
  std::string stored = EncodeObject("hello world", Compression::kNever, key.get());
  auto r = DecodeObject(stored, other.get(), "object x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("key id " + key->id()), std::string::npos);
  r = DecodeObject(stored, nullptr, "object x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--backup-key-file"), std::string::npos);
  std::string flipped = stored;
  flipped[flipped.size() - 3] ^= 1;
  EXPECT_TRUE(DecodeObject(flipped, key.get(), "x").status().IsCorruption());
  EXPECT_TRUE(DecodeObject(stored.substr(0, stored.size() - 5), key.get(), "x").status().IsCorruption());
  EXPECT_TRUE(DecodeObject("garbage", nullptr, "x").status().IsCorruption());
}

TEST(Object, ContentIdIsKeyedWithAKey) {
  EXPECT_EQ(ContentId("abc", nullptr), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(ContentId("abc", TestKey('k').get()), ContentId("abc", nullptr));
  EXPECT_NE(ContentId("abc", TestKey('k').get()), ContentId("abc", TestKey('o').get()));
}

TEST(Manifest, JsonRoundTripAndChecks) {
  Manifest m;
  m.id = "20261121T000000Z-abcdef";
  m.time_ms = 1;
  m.applied_sequence = 42;
  const std::string aa(64, 'a'), bb(64, 'b');
  m.files.push_back(FileEntry{"db/000005.ldb", 10, 7, {{aa, 4}, {bb, 6}}});
  const std::string id = m.id;
  auto back = ManifestFromJson(ManifestToJson(m), "m", id);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value().files[0].chunks[1].id, bb);
  m.files[0].size = 11;
  EXPECT_TRUE(ManifestFromJson(ManifestToJson(m), "m", id).status().IsCorruption());
  m.files[0] = FileEntry{"../etc/passwd", 0, 0, {}};
  EXPECT_TRUE(ManifestFromJson(ManifestToJson(m), "m", id).status().IsCorruption());
}

// A manifest is a repository object anyone with write access to the bucket
// can plant: its id, chunk ids and paths become local paths and store keys.
TEST(Manifest, RefusesNamesThatLeaveTheirDirectory) {
  Manifest m;
  m.id = "20261121T000000Z-abcdef";
  m.time_ms = 1;
  auto parse = [&](const std::string& key_id) { return ManifestFromJson(ManifestToJson(m), "m", key_id); };
  ASSERT_TRUE(parse(m.id).ok());
  EXPECT_TRUE(parse("20261121T000000Z-abcdee").status().IsCorruption());  // not the name it is stored under
  for (const char* bad : {"x/../../victim", "../../victim2.txt", "..", ".hidden", "a b", "", "a/b"}) {
    m.id = bad;
    auto r = parse(bad);
    EXPECT_TRUE(r.status().IsCorruption()) << bad;
  }
  m.id = "20261121T000000Z-abcdef";
  for (const char* bad : {"db/../../x", "/etc/passwd", "db//x", "db/./x", "db/x\\..", "wal/\n"}) {
    m.files = {FileEntry{bad, 0, 0, {}}};
    EXPECT_TRUE(parse(m.id).status().IsCorruption()) << bad;
  }
  m.files = {FileEntry{"db/000005.ldb", 1, 0, {{"../../../x", 1}}}};
  EXPECT_TRUE(parse(m.id).status().IsCorruption());
}

// Found by fuzz/backup_object_fuzz.cc: a number too large for its field
// (parsed as a float) was converted with undefined behaviour.
TEST(Manifest, NumbersOutOfRangeAreCorruptionNotUndefinedBehaviour) {
  const std::string head = R"({"format": 1, "id": "20261121T000000Z-abcdef", "applied_sequence": 1, "files": [], )";
  for (const char* field : {R"("time_ms": 2222222222222222222222222222222})", R"("time_ms": 1.5})",
                            R"("time_ms": 1, "bytes": -1})", R"("time_ms": "1"})",
                            R"("time_ms": 1, "duration_ms": 1e300})"}) {
    auto m = ManifestFromJson(head + field, "m", "20261121T000000Z-abcdef");
    EXPECT_TRUE(m.status().IsCorruption()) << field;
  }
  EXPECT_TRUE(ManifestFromJson(head + R"("time_ms": 7})", "m", "20261121T000000Z-abcdef").ok());
}

TEST(Names, StoreKeys) {
  EXPECT_TRUE(IsStoreKey("config"));
  EXPECT_TRUE(IsStoreKey("objects/ab/" + std::string(64, 'a')));
  EXPECT_TRUE(IsStoreKey("wal/0123/00000000000000000001-00000000000000000002"));
  for (const char* bad : {"", "/config", "config/", "a//b", "a/../b", "..", "a/./b", "a b", "a\\b", "\xff"}) {
    EXPECT_FALSE(IsStoreKey(bad)) << bad;
  }
  EXPECT_FALSE(IsStoreKey(std::string(1025, 'a')));
  EXPECT_TRUE(IsBackupId("20261121T101500Z-3fa2c1"));
  EXPECT_FALSE(IsBackupId("-rf"));
  EXPECT_FALSE(IsObjectId(std::string(64, 'A')));
  EXPECT_TRUE(IsObjectId(std::string(64, 'f')));
}

TEST(Retention, KeepLastDailyWeekly) {
  std::vector<Manifest> ms;
  const int64_t day = 86400000;
  for (int i = 0; i < 30; i++) {  // two backups a day for 15 days, oldest first
    Manifest m;
    m.time_ms = 1700000000000 + i * day / 2;
    ms.push_back(m);
  }
  PruneOptions o;
  o.keep_last = 3;
  auto keep = RetentionKeeps(ms, o);
  EXPECT_EQ(std::count(keep.begin(), keep.end(), true), 3);
  EXPECT_TRUE(keep[29] && keep[28] && keep[27]);
  o.keep_last = 0;
  o.keep_daily = 5;
  keep = RetentionKeeps(ms, o);
  EXPECT_EQ(std::count(keep.begin(), keep.end(), true), 5);
  o.keep_weekly = 3;
  keep = RetentionKeeps(ms, o);
  EXPECT_GE(std::count(keep.begin(), keep.end(), true), 5);
  EXPECT_LE(std::count(keep.begin(), keep.end(), true), 8);
}

TEST(Interval, Parses) {
  int64_t ms;
  EXPECT_TRUE(ParseInterval("6h", &ms));
  EXPECT_EQ(ms, 6 * 3600 * 1000);
  EXPECT_TRUE(ParseInterval("off", &ms));
  EXPECT_EQ(ms, 0);
  EXPECT_FALSE(ParseInterval("6", &ms));
  EXPECT_FALSE(ParseInterval("h", &ms));
  EXPECT_FALSE(ParseInterval("0m", &ms));
  EXPECT_FALSE(ParseInterval("-1h", &ms));
}

}  // namespace
}  // namespace levee::backup
