// Replication ids kept in <data-dir>/replication-ids.
#include "repl/ids.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace levee::repl {
namespace {
namespace fs = std::filesystem;

std::string Id(char c) { return std::string(40, c); }

class IdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = (fs::temp_directory_path() / ("levee-ids-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name())).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string Read() {
    std::ifstream f(fs::path(dir) / "replication-ids");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  std::string dir;
};

TEST_F(IdStoreTest, FirstStartMakesAnIdOfItsOwnAndSavesIt) {
  IdStore s;
  ASSERT_TRUE(s.Load(dir).ok());
  ReplIds ids = s.Get();
  EXPECT_EQ(ids.replid.size(), 40u);
  EXPECT_EQ(ids.replid.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(ids.replid2, kNoId);
  EXPECT_EQ(ids.own, std::vector<std::string>{ids.replid});
  IdStore again;
  ASSERT_TRUE(again.Load(dir).ok());
  EXPECT_EQ(again.Get().replid, ids.replid) << "a restart keeps the id";
}

TEST_F(IdStoreTest, EverythingSurvivesARestart) {
  IdStore s;
  ASSERT_TRUE(s.Load(dir).ok());
  ReplIds ids{Id('c'), Id('b'), 250, {{Id('a'), 80}}, {Id('c'), Id('a')}};
  s.Set(ids);
  EXPECT_EQ(Read(), Id('c') + " " + Id('b') + " 250\nolder " + Id('a') + " 80\nown " + Id('c') + "\nown " + Id('a') +
                        "\n");
  IdStore again;
  ASSERT_TRUE(again.Load(dir).ok());
  ReplIds back = again.Get();
  EXPECT_EQ(back.replid, ids.replid);
  EXPECT_EQ(back.replid2, ids.replid2);
  EXPECT_EQ(back.second_offset, 250u);
  EXPECT_EQ(back.older, ids.older);
  EXPECT_EQ(back.own, ids.own);
}

TEST_F(IdStoreTest, TheFirstLineAloneIsReadAsBeforeHistoriesWereKept) {
  { std::ofstream(fs::path(dir) / "replication-ids") << Id('b') << " " << Id('a') << " 99\n"; }
  IdStore s;
  ASSERT_TRUE(s.Load(dir).ok());
  EXPECT_EQ(s.Get().replid, Id('b'));
  EXPECT_EQ(s.Get().second_offset, 99u);
  EXPECT_TRUE(s.Get().older.empty());
}

TEST_F(IdStoreTest, AnUnreadableFileStartsANewHistory) {
  { std::ofstream(fs::path(dir) / "replication-ids") << "garbage\n"; }
  IdStore s;
  ASSERT_TRUE(s.Load(dir).ok());
  EXPECT_NE(s.Get().replid, "garbage");
  EXPECT_EQ(s.Get().replid.size(), 40u);
  EXPECT_EQ(Read().substr(0, 40), s.Get().replid) << "the new history is saved before it is used";
}

TEST_F(IdStoreTest, ALoadThatCannotSaveFails) {
  IdStore s;
  EXPECT_FALSE(s.Load(dir + "/no/such/dir").ok());
}

TEST(IdsTest, HistoryOfAndBackKeepTheChain) {
  ReplIds ids{Id('c'), Id('b'), 250, {{Id('a'), 80}}, {Id('c')}};
  History h = HistoryOf(ids, 400);
  EXPECT_EQ(h, (History{{Id('c'), 400}, {Id('b'), 250}, {Id('a'), 80}}));
  EXPECT_EQ(HistoryOf(ids, 200), (History{{Id('c'), 200}, {Id('b'), 200}, {Id('a'), 80}})) << "clamped at last";
  ReplIds back = IdsFromHistory(h, {Id('c')});
  EXPECT_EQ(back.replid, Id('c'));
  EXPECT_EQ(back.replid2, Id('b'));
  EXPECT_EQ(back.second_offset, 250u);
  EXPECT_EQ(back.older, (History{{Id('a'), 80}}));
  EXPECT_EQ(HistoryOf(ReplIds{Id('d'), kNoId, 0, {}, {}}, 9), (History{{Id('d'), 9}})) << "no replid2";
}

TEST(IdsTest, IdsFromHistoryKeepsAtMostTheLimit) {
  History h;
  std::vector<std::string> own;
  for (size_t i = 0; i < kMaxHistoryEntries + 10; i++) {
    h.push_back({Id('a' + static_cast<char>(i % 20)), 10});
    own.push_back(Id('a'));
  }
  ReplIds ids = IdsFromHistory(h, own);
  EXPECT_EQ(ids.older.size(), kMaxHistoryEntries);
  EXPECT_EQ(ids.own.size(), kMaxHistoryEntries);
  EXPECT_NE(NewReplId(), NewReplId());
}

}  // namespace
}  // namespace levee::repl
