#include "wal/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../test_util.h"

namespace levee::wal {
namespace {

Record MakeRecord(uint64_t seq, const std::string& key, const std::string& value) {
  Record r;
  r.sequence = seq;
  r.time_ms = 1000 + seq;
  r.mutations.push_back(Mutation{Mutation::Kind::kPut, key, value});
  if (seq % 3 == 0) r.mutations.push_back(Mutation{Mutation::Kind::kDelete, key + "-old", ""});
  return r;
}

void AppendRange(Log* log, uint64_t from, uint64_t to) {
  std::string framed;
  for (uint64_t s = from; s <= to; s++) AppendFramed(MakeRecord(s, "k" + std::to_string(s), "v"), &framed);
  ASSERT_TRUE(log->Append(framed, from, to).ok());
}

std::vector<Record> ReadAll(Log* log, uint64_t after = 0) {
  std::vector<Record> out;
  EXPECT_TRUE(log->ReadFrom(after, [&](Record&& r) {
                   out.push_back(std::move(r));
                   return true;
                 }).ok());
  return out;
}

TEST(RecordTest, PublishRoundTripsAndChangesNoData) {
  Record r;
  r.sequence = 7;
  r.time_ms = 1234;
  r.mutations.push_back(Mutation{Mutation::Kind::kPublish, "__sentinel__:hello", "127.0.0.1,26379,abc"});
  r.mutations.push_back(Mutation{Mutation::Kind::kPut, "k", "v"});
  std::string framed;
  AppendFramed(r, &framed);
  Record back;
  ASSERT_TRUE(DecodePayload(std::string_view(framed).substr(kFrameHeaderSize), &back));
  ASSERT_EQ(back.mutations.size(), 2u);
  EXPECT_EQ(back.mutations[0].kind, Mutation::Kind::kPublish);
  EXPECT_EQ(back.mutations[0].key, "__sentinel__:hello");
  EXPECT_EQ(back.mutations[0].value, "127.0.0.1,26379,abc");
  EXPECT_FALSE(back.mutations[0].changes_data());
  EXPECT_TRUE(back.mutations[1].changes_data());
  // An unknown kind is refused, not skipped.
  std::string payload(framed.substr(kFrameHeaderSize));
  payload[17] = 9;  // sequence (8) + time (8) + count (1): the first kind byte
  EXPECT_FALSE(DecodePayload(payload, &back));
}

TEST(LogTest, RecordsRoundTripAcrossReopenAndSegments) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 200};  // tiny segments: several rolls
  {
    std::vector<std::string> w;
    auto log = Log::Open(o, &w);
    ASSERT_TRUE(log.ok());
    for (uint64_t s = 1; s <= 30; s += 3) AppendRange(log->get(), s, s + 2);
    ASSERT_TRUE((*log)->Sync().ok());
    EXPECT_GT((*log)->Segments().size(), 3u);
  }
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_TRUE(w.empty());
  EXPECT_EQ((*log)->last_sequence(), 30u);
  auto recs = ReadAll(log->get(), 10);
  ASSERT_EQ(recs.size(), 20u);
  EXPECT_EQ(recs.front().sequence, 11u);
  EXPECT_EQ(recs.front().mutations[0].key, "k11");
  EXPECT_EQ(recs[1].mutations.size(), 2u);  // 12 % 3 == 0
  EXPECT_EQ(recs[1].mutations[1].kind, Mutation::Kind::kDelete);
}

TEST(LogTest, TornTailIsCutOffAndAppendsContinue) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 1 << 20};
  std::string seg;
  {
    std::vector<std::string> w;
    auto log = Log::Open(o, &w);
    AppendRange(log->get(), 1, 5);
    seg = (*log)->Segments().back().path;
  }
  auto full = std::filesystem::file_size(seg);
  std::filesystem::resize_file(seg, full - 3);  // the last record loses its end
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("incomplete record"), std::string::npos) << w[0];
  EXPECT_EQ((*log)->last_sequence(), 4u);
  AppendRange(log->get(), 5, 6);
  EXPECT_EQ(ReadAll(log->get()).size(), 6u);
}

TEST(LogTest, CorruptRecordInTheMiddleIsRefusedWithFileAndOffset) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 1 << 20};
  std::string seg;
  {
    std::vector<std::string> w;
    auto log = Log::Open(o, &w);
    AppendRange(log->get(), 1, 5);
    seg = (*log)->Segments().back().path;
  }
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);  // inside the first record's payload
    f.put('\x7f');
  }
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  ASSERT_FALSE(log.ok());
  EXPECT_TRUE(log.status().IsCorruption());
  EXPECT_NE(log.status().message().find(seg), std::string::npos);
  EXPECT_NE(log.status().message().find("damaged in the middle"), std::string::npos) << log.status().message();
}

TEST(LogTest, MissingSegmentIsCorruption) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 100};
  std::vector<std::string> segs;
  {
    std::vector<std::string> w;
    auto log = Log::Open(o, &w);
    for (uint64_t s = 1; s <= 12; s += 2) AppendRange(log->get(), s, s + 1);
    for (const auto& s : (*log)->Segments()) segs.push_back(s.path);
  }
  ASSERT_GE(segs.size(), 3u);
  std::filesystem::remove(segs[1]);
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("segment is missing"), std::string::npos) << log.status().message();
}

TEST(LogTest, TrimKeepsTheCurrentSegmentAndRecordsAfterTheCut) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 100};
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  for (uint64_t s = 1; s <= 20; s += 2) AppendRange(log->get(), s, s + 1);
  size_t before = (*log)->Segments().size();
  ASSERT_TRUE((*log)->TrimThrough(10).ok());
  EXPECT_LT((*log)->Segments().size(), before);
  EXPECT_LE((*log)->first_sequence(), 11u);
  auto recs = ReadAll(log->get(), 10);
  EXPECT_EQ(recs.size(), 10u);
  ASSERT_TRUE((*log)->TrimThrough(UINT64_MAX).ok());
  EXPECT_EQ((*log)->Segments().size(), 1u);  // the open segment stays
}

TEST(LogTest, AppendRefusesASequenceGap) {
  levee::testing::TempDir dir;
  std::vector<std::string> w;
  auto log = Log::Open(LogOptions{dir.path(), 1 << 20}, &w);
  AppendRange(log->get(), 1, 3);
  std::string framed;
  AppendFramed(MakeRecord(5, "k", "v"), &framed);
  EXPECT_FALSE((*log)->Append(framed, 5, 5).ok());
  EXPECT_EQ((*log)->last_sequence(), 3u);
}

TEST(LogTest, NotALogFileIsNamed) {
  levee::testing::TempDir dir;
  std::ofstream(dir.Sub(SegmentFileName(1))) << "this is not a levee log file at all";
  std::vector<std::string> w;
  auto log = Log::Open(LogOptions{dir.path(), 1 << 20}, &w);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("not a levee log file"), std::string::npos);
}

}  // namespace
}  // namespace levee::wal

namespace levee::wal {
namespace {

TEST(LogTest, RemoveAllStartsAFreshLogThatReopensCleanly) {
  levee::testing::TempDir dir;
  LogOptions o{dir.path(), 100};
  {
    std::vector<std::string> w;
    auto log = Log::Open(o, &w);
    for (uint64_t s = 1; s <= 10; s += 2) AppendRange(log->get(), s, s + 1);
    ASSERT_TRUE((*log)->RemoveAll().ok());
    EXPECT_EQ((*log)->last_sequence(), 0u);
    AppendRange(log->get(), 51, 53);  // LevelDB had applied through 50
  }
  std::vector<std::string> w;
  auto log = Log::Open(o, &w);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->first_sequence(), 51u);
  EXPECT_EQ((*log)->last_sequence(), 53u);
}

}  // namespace
}  // namespace levee::wal
