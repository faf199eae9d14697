#include "repl/history.h"

#include <gtest/gtest.h>

namespace levee::repl {
namespace {

std::string Id(char c) { return std::string(40, c); }

TEST(HistoryTest, CommonPrefixAcrossSeveralFailovers) {
  // A wrote 1..100; B was promoted at 80 and wrote to 300; C was promoted
  // from B at 250. A replica that stopped at A@60 shares 60 with C, though
  // C's two newest ids (PSYNC2's replid/replid2) do not name A.
  History c{{Id('c'), 400}, {Id('b'), 250}, {Id('a'), 80}};
  bool related = false;
  EXPECT_EQ(CommonPrefix(History{{Id('a'), 60}}, c, &related), 60u);
  EXPECT_TRUE(related);
  // The old primary A (through 100) parts from C at 80.
  EXPECT_EQ(CommonPrefix(History{{Id('a'), 100}}, c), 80u);
  // B itself, restarted after writing to 300, parts at 250.
  EXPECT_EQ(CommonPrefix(History{{Id('b'), 300}, {Id('a'), 80}}, c), 250u);
  // Unrelated data.
  EXPECT_EQ(CommonPrefix(History{{Id('z'), 500}}, c, &related), 0u);
  EXPECT_FALSE(related);
}

TEST(HistoryTest, ReceivedAfterCountsOnlyRecordsFromOtherServers) {
  // This server started 'a' (wrote 1..80 as primary), then followed 'b'
  // (received 81..300).
  History h{{Id('b'), 300}, {Id('a'), 80}};
  std::vector<std::string> own{Id('a')};
  EXPECT_EQ(ReceivedAfter(h, 250, own), 50u);
  EXPECT_EQ(ReceivedAfter(h, 50, own), 220u);  // 51..80 were its own
  EXPECT_EQ(ReceivedAfter(h, 300, own), 0u);
  // The old primary: everything past the parting point is its own.
  EXPECT_EQ(ReceivedAfter(History{{Id('a'), 100}}, 80, own), 0u);
  // Nothing known to be own: all of it counts.
  EXPECT_EQ(ReceivedAfter(h, 0, {}), 300u);
}

TEST(HistoryTest, ClampCapsThroughAtTheLastSequence) {
  // A replica that adopted its primary's history holds less than it names.
  History h = Clamp({{Id('b'), 500}, {Id('a'), 300}}, 200);
  EXPECT_EQ(h, (History{{Id('b'), 200}, {Id('a'), 200}}));
  History big;
  for (size_t i = 0; i < kMaxHistoryEntries + 5; i++) big.push_back({Id('x'), 1});
  EXPECT_EQ(Clamp(big, 1).size(), kMaxHistoryEntries);
}

TEST(HistoryTest, EncodesAndRejectsMalformedText) {
  History h{{Id('b'), 300}, {Id('a'), 0}};
  History back;
  ASSERT_TRUE(DecodeHistory(EncodeHistory(h), &back));
  EXPECT_EQ(back, h);
  for (const std::string& bad : std::vector<std::string>{"", "abc:1", "x", ",", Id('a') + ":", Id('a') + ":1x",
                                                        Id('a') + ":1,", Id('a') + ":-1"}) {
    EXPECT_FALSE(DecodeHistory(bad, &back)) << bad;
  }
}

}  // namespace
}  // namespace levee::repl
