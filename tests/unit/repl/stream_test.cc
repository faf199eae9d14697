#include "repl/stream.h"

#include <gtest/gtest.h>

#include "common/coding.h"
#include "wal/record.h"

namespace levee::repl {
namespace {

TEST(StreamTest, RecordBlocksRoundTripCompressedOrNot) {
  std::string frames(10000, 'a');  // compresses well
  for (int level : {0, 1}) {
    std::string out;
    AppendRecordsBlock(frames, level, &out);
    BlockType type;
    uint32_t len, crc;
    ASSERT_TRUE(ParseBlockHeader(out.data(), &type, &len, &crc));
    EXPECT_EQ(type, level ? BlockType::kRecordsZstd : BlockType::kRecords);
    if (level) {
      EXPECT_LT(len, frames.size() / 10);
    }
    std::string back;
    ASSERT_TRUE(OpenRecordsBlock(type, std::string_view(out).substr(kBlockHeaderSize, len), crc, &back).ok());
    EXPECT_EQ(back, frames);
  }
}

TEST(StreamTest, DamageIsDetected) {
  std::string out;
  AppendRecordsBlock(std::string(5000, 'b'), 1, &out);
  BlockType type;
  uint32_t len, crc;
  ASSERT_TRUE(ParseBlockHeader(out.data(), &type, &len, &crc));
  out[kBlockHeaderSize + 7] ^= 1;
  std::string back;
  EXPECT_TRUE(OpenRecordsBlock(type, std::string_view(out).substr(kBlockHeaderSize, len), crc, &back).IsCorruption());
  char bad[kBlockHeaderSize] = {9};
  EXPECT_FALSE(ParseBlockHeader(bad, &type, &len, &crc));  // unknown type
  std::string huge;
  huge.push_back(1);
  PutFixed32(&huge, kMaxBlockSize + 1);
  PutFixed32(&huge, 0);
  EXPECT_FALSE(ParseBlockHeader(huge.data(), &type, &len, &crc));
}

TEST(StreamTest, ManifestRoundTripAndRefusesPaths) {
  SyncManifest m{"inst", 42, {{"000005.ldb", 100}, {"MANIFEST-000004", 7}}};
  SyncManifest back;
  ASSERT_TRUE(DecodeManifest(EncodeManifest(m), &back));
  EXPECT_EQ(back.instance_id, "inst");
  EXPECT_EQ(back.sequence, 42u);
  ASSERT_EQ(back.files.size(), 2u);
  EXPECT_EQ(back.files[1].name, "MANIFEST-000004");
  m.files.push_back({"../../etc/passwd", 1});
  EXPECT_FALSE(DecodeManifest(EncodeManifest(m), &back));
}

TEST(StreamTest, DecodeFramesChecksSequencesAndChecksums) {
  auto frames_of = [](std::vector<uint64_t> seqs) {
    std::string out;
    for (uint64_t q : seqs) {
      wal::Record r;
      r.sequence = q;
      r.mutations.push_back(wal::Mutation{wal::Mutation::Kind::kPut, "k" + std::to_string(q), "v"});
      wal::AppendFramed(r, &out);
    }
    return out;
  };
  std::vector<wal::Record> out;
  uint64_t next = 5;
  ASSERT_TRUE(DecodeFrames(frames_of({5, 6, 7}), &next, &out).ok());
  EXPECT_EQ(next, 8u);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].mutations[0].key, "k7");
  // A gap, a repeat, a damaged byte, a cut frame: each refused with why.
  next = 8;
  EXPECT_NE(DecodeFrames(frames_of({9}), &next, &out).message().find("where 8 was expected"), std::string::npos);
  next = 8;
  EXPECT_FALSE(DecodeFrames(frames_of({8, 8}), &next, &out).ok());
  std::string bad = frames_of({8});
  bad.back() ^= 1;
  next = 8;
  EXPECT_NE(DecodeFrames(bad, &next, &out).message().find("checksum"), std::string::npos);
  next = 8;
  EXPECT_NE(DecodeFrames(frames_of({8}).substr(0, 6), &next, &out).message().find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace levee::repl
