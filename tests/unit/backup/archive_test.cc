#include "backup/archive.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "wal/log.h"

#include "../test_util.h"

namespace levee::backup {
namespace {

const std::string kA(40, 'a'), kB(40, 'b'), kC(40, 'c');

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepoOptions o;
    o.create = true;
    auto r = Repository::Open("file://" + dir_.path() + "/repo", o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    repo_ = std::move(r).value();
  }
  // Records first..last on timeline; each puts key "k<seq>" = tag.
  void Put(const std::string& timeline, uint64_t first, uint64_t last, const std::string& tag) {
    std::string framed;
    for (uint64_t s = first; s <= last; s++) {
      wal::Record r;
      r.sequence = s;
      r.time_ms = static_cast<int64_t>(1000 * s);
      r.mutations.push_back({wal::Mutation::Kind::kPut, "k" + std::to_string(s), tag});
      wal::AppendFramed(r, &framed);
    }
    ASSERT_TRUE(PutArchivedSegment(*repo_, timeline, first, last, framed).ok());
  }
  // "seq:tag" for each record read along timeline's history.
  StatusOr<std::vector<std::string>> Read(const std::string& timeline, uint64_t after) {
    ArchiveIndex index;
    LEVEE_RETURN_IF_ERROR(LoadArchiveIndex(*repo_, &index));
    std::vector<std::string> out;
    Status st = ReadArchive(*repo_, index, timeline, after, [&](wal::Record&& r) {
      out.push_back(std::to_string(r.sequence) + ":" + r.mutations[0].value);
      return true;
    });
    if (!st.ok()) return st;
    return out;
  }

  levee::testing::TempDir dir_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(ArchiveTest, ANewTimelineNeverReplaysTheOldPrimarysLostWrites) {
  ASSERT_TRUE(WriteTimeline(*repo_, {kA, "", 0, 1}).ok());
  Put(kA, 1, 5, "a");
  Put(kA, 6, 8, "lost");  // written on the old primary, never replicated
  ASSERT_TRUE(WriteTimeline(*repo_, {kB, kA, 5, 2}).ok());
  Put(kB, 6, 7, "b");
  auto b = Read(kB, 0);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b.value(), (std::vector<std::string>{"1:a", "2:a", "3:a", "4:a", "5:a", "6:b", "7:b"}));
  auto a = Read(kA, 3);  // the old history is still there to choose
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value(), (std::vector<std::string>{"4:a", "5:a", "6:lost", "7:lost", "8:lost"}));
  ArchiveIndex index;
  ASSERT_TRUE(LoadArchiveIndex(*repo_, &index).ok());
  EXPECT_EQ(index.Latest(), kB);
  EXPECT_EQ(index.LastArchived(kA), 8u);
}

TEST_F(ArchiveTest, OverlappingSegmentsAndSharedRecordsUnderTheNewTimeline) {
  ASSERT_TRUE(WriteTimeline(*repo_, {kA, "", 0, 1}).ok());
  Put(kA, 1, 4, "a");
  Put(kA, 3, 6, "a");  // two archivers (role any) cut the log differently
  // The new primary archives the shared records the old one had not.
  ASSERT_TRUE(WriteTimeline(*repo_, {kB, kA, 9, 2}).ok());
  Put(kB, 7, 12, "b");
  auto b = Read(kB, 2);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b.value(), (std::vector<std::string>{"3:a", "4:a", "5:a", "6:a", "7:b", "8:b", "9:b", "10:b", "11:b", "12:b"}));
}

TEST_F(ArchiveTest, AHoleIsNamedAndTheEndIsNot) {
  ASSERT_TRUE(WriteTimeline(*repo_, {kA, "", 0, 1}).ok());
  Put(kA, 1, 3, "a");
  Put(kA, 6, 7, "a");  // 4 and 5 were trimmed before they were archived
  std::vector<std::string> seen;
  ArchiveIndex index;
  ASSERT_TRUE(LoadArchiveIndex(*repo_, &index).ok());
  Status st = ReadArchive(*repo_, index, kA, 0, [&](wal::Record&& r) {
    seen.push_back(std::to_string(r.sequence));
    return true;
  });
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("no record 4"), std::string::npos) << st.message();
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "3"}));
  auto after = Read(kA, 5);  // from a backup taken after the gap
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after.value().size(), 2u);
  auto end = Read(kA, 7);
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end.value().empty());
  // The parent's records past the fork are not a hole on the child's path.
  ASSERT_TRUE(WriteTimeline(*repo_, {kC, kA, 2, 2}).ok());
  auto c = Read(kC, 0);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value(), (std::vector<std::string>{"1:a", "2:a"}));
}

TEST_F(ArchiveTest, ApplyArchiveWritesOneSegmentCutAtTheTarget) {
  ASSERT_TRUE(WriteTimeline(*repo_, {kA, "", 0, 1}).ok());
  Put(kA, 1, 10, "a");
  Manifest base;
  base.applied_sequence = 4;
  std::string wal_dir = dir_.path() + "/wal";
  std::filesystem::create_directories(wal_dir);
  { std::ofstream(wal_dir + "/00000000000000000001.wal") << "restored log"; }
  auto r = ApplyArchive(*repo_, base, wal_dir, {7500, ""});  // records are at 1000 * seq ms
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().records, 3u);
  EXPECT_EQ(r.value().last_sequence, 7u);
  EXPECT_EQ(r.value().next_time_ms, 8000);
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(wal_dir)) files.push_back(e.path().filename());
  EXPECT_EQ(files, (std::vector<std::string>{"00000000000000000005.wal"}));
  wal::ScanResult scan;
  ASSERT_TRUE(wal::ScanSegment(wal_dir + "/00000000000000000005.wal", 0, false, nullptr, &scan).ok());
  EXPECT_EQ(scan.records, 3u);
  EXPECT_EQ(scan.last_sequence, 7u);
}

}  // namespace
}  // namespace levee::backup
