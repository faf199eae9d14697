#include "wal/cursor.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "common/coding.h"

namespace levee::wal {
namespace {

// One append per record, so small segments roll often.
void AppendRange(Log* log, uint64_t from, uint64_t to) {
  for (uint64_t s = from; s <= to; s++) {
    std::string framed;
    Record r;
    r.sequence = s;
    r.time_ms = 1;
    r.mutations.push_back(Mutation{Mutation::Kind::kPut, "k" + std::to_string(s), std::string(40, 'v')});
    AppendFramed(r, &framed);
    ASSERT_TRUE(log->Append(framed, s, s).ok());
  }
}

// Decodes the frames a cursor returned into their sequences.
std::vector<uint64_t> Sequences(const std::string& frames) {
  std::vector<uint64_t> out;
  std::string_view in(frames);
  while (!in.empty()) {
    uint32_t len = DecodeFixed32(in.data());
    Record r;
    EXPECT_TRUE(DecodePayload(in.substr(kFrameHeaderSize, len), &r));
    out.push_back(r.sequence);
    in.remove_prefix(kFrameHeaderSize + len);
  }
  return out;
}

TEST(LogCursorTest, FollowsAppendsAcrossSegments) {
  levee::testing::TempDir dir;
  std::vector<std::string> w;
  auto log = std::move(Log::Open(LogOptions{dir.path(), 300}, &w).value());  // a few records per segment
  AppendRange(log.get(), 1, 10);
  LogCursor c(log.get());
  ASSERT_TRUE(c.Seek(3).ok());
  std::vector<uint64_t> got;
  uint64_t last = 0;
  for (int i = 0; i < 100 && got.size() < 7; i++) {
    std::string frames;
    ASSERT_TRUE(c.Read(64, &frames, &last).ok());
    for (auto s : Sequences(frames)) got.push_back(s);
  }
  EXPECT_EQ(got, (std::vector<uint64_t>{4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(last, 10u);
  // Caught up: nothing, and no error; then new appends show up.
  std::string frames;
  ASSERT_TRUE(c.Read(1 << 20, &frames, &last).ok());
  EXPECT_TRUE(frames.empty());
  AppendRange(log.get(), 11, 12);
  for (int i = 0; i < 10 && frames.empty(); i++) ASSERT_TRUE(c.Read(1 << 20, &frames, &last).ok());
  EXPECT_EQ(Sequences(frames), (std::vector<uint64_t>{11, 12}));
}

TEST(LogCursorTest, TrimmedRecordsAreNotFound) {
  levee::testing::TempDir dir;
  std::vector<std::string> w;
  auto log = std::move(Log::Open(LogOptions{dir.path(), 300}, &w).value());
  AppendRange(log.get(), 1, 30);
  ASSERT_TRUE(log->TrimThrough(20).ok());
  LogCursor c(log.get());
  ASSERT_GT(log->Segments().size(), 2u);
  ASSERT_GT(log->first_sequence(), 1u);
  EXPECT_EQ(c.Seek(0).code(), Status::Code::kNotFound);
  EXPECT_TRUE(c.Seek(log->first_sequence() - 1).ok());
  EXPECT_EQ(c.Seek(31).code(), Status::Code::kNotFound);  // past the end
  EXPECT_TRUE(c.Seek(30).ok());                           // caught up
}

}  // namespace
}  // namespace levee::wal
