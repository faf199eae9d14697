#include "resp/parser.h"

#include <gtest/gtest.h>

namespace levee::resp {
namespace {

using R = RequestParser::Result;

// Feeds input in pieces of `step` bytes, as a network would; collects
// commands. Returns the error text, or "" if none.
std::string Feed(RequestParser& p, const std::string& input, size_t step, std::vector<std::vector<std::string>>* out) {
  std::string buf;
  for (size_t i = 0; i < input.size(); i += step) {
    buf.append(input.substr(i, step));
    while (true) {
      size_t consumed;
      R r = p.Parse(buf, &consumed);
      buf.erase(0, consumed);
      if (r == R::kNeedMore) break;
      if (r == R::kError) return p.error();
      if (!p.args().empty()) out->push_back(p.args());
    }
  }
  return "";
}

TEST(ParserTest, MultibulkPipelineByteByByteEqualsWhole) {
  std::string in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
  for (size_t step : {size_t(1), size_t(2), size_t(3), size_t(7), in.size()}) {
    RequestParser p;
    std::vector<std::vector<std::string>> cmds;
    ASSERT_EQ(Feed(p, in, step, &cmds), "") << "step " << step;
    ASSERT_EQ(cmds.size(), 3u) << "step " << step;
    EXPECT_EQ(cmds[0], (std::vector<std::string>{"SET", "k", "va\r\nl"}));
    EXPECT_EQ(cmds[1], (std::vector<std::string>{"PING"}));
    EXPECT_EQ(cmds[2], (std::vector<std::string>{"GET", ""}));
  }
}

TEST(ParserTest, InlineCommandsWithQuotesAndEscapes) {
  RequestParser p;
  std::vector<std::vector<std::string>> cmds;
  ASSERT_EQ(Feed(p, "set k \"a b\\n\\x41\"\r\nget 'it\\'s'\n\r\n", 1, &cmds), "");
  ASSERT_EQ(cmds.size(), 2u);  // the empty line is skipped
  EXPECT_EQ(cmds[0], (std::vector<std::string>{"set", "k", "a b\nA"}));
  EXPECT_EQ(cmds[1], (std::vector<std::string>{"get", "it's"}));
}

TEST(ParserTest, EmptyAndNegativeMultibulkAreSkippedLikeRedis) {
  RequestParser p;
  std::vector<std::vector<std::string>> cmds;
  ASSERT_EQ(Feed(p, "*-10\r\n*0\r\n*1\r\n$4\r\nPING\r\n", 1, &cmds), "");
  ASSERT_EQ(cmds.size(), 1u);
}

struct BadInput {
  std::string input;
  std::string error;
};

class ProtocolErrorTest : public ::testing::TestWithParam<BadInput> {};

// The malformed inputs of Redis' tests/unit/protocol.tcl, and more.
TEST_P(ProtocolErrorTest, IsRefusedWithRedisWording) {
  for (size_t step : {size_t(1), GetParam().input.size()}) {
    RequestParser p;
    std::vector<std::vector<std::string>> cmds;
    EXPECT_EQ(Feed(p, GetParam().input, step, &cmds), GetParam().error) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Redis, ProtocolErrorTest,
    ::testing::Values(BadInput{"*20000000\r\n", "invalid multibulk length"},
                      BadInput{"*3000000000\r\n", "invalid multibulk length"},
                      BadInput{"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "expected '$', got 'f'"},
                      BadInput{"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", "invalid bulk length"},
                      BadInput{"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", "invalid bulk length"},
                      BadInput{"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", "invalid bulk length"},
                      BadInput{"*1\r\nfoo\r\n", "expected '$', got 'f'"},
                      BadInput{"*abc\r\n", "invalid multibulk length"},
                      BadInput{"set k \"unterminated\r\n", "unbalanced quotes in request"},
                      BadInput{"set k \"a\"b\r\n", "unbalanced quotes in request"},
                      // Protocol desync regression tests: no newline for 64 KiB.
                      BadInput{std::string("\x00", 1) + std::string(70000, 'A'), "too big inline request"},
                      BadInput{std::string("*\x00", 2) + std::string(70000, 'A'), "too big mbulk count string"},
                      BadInput{std::string("$\x00", 2) + std::string(70000, 'A'), "too big inline request"},
                      BadInput{"*1\r\n$" + std::string(70000, '1'), "too big bulk count string"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return "case" + std::to_string(info.index); });

TEST(ParserTest, UnauthenticatedClientsGetSmallLimits) {
  RequestParser p;
  p.set_authenticated(false);
  std::vector<std::vector<std::string>> cmds;
  EXPECT_EQ(Feed(p, "*11\r\n", 100, &cmds), "unauthenticated multibulk length");
  RequestParser q;
  q.set_authenticated(false);
  EXPECT_EQ(Feed(q, "*2\r\n$4\r\nAUTH\r\n$20000\r\n", 100, &cmds), "unauthenticated bulk length");
  RequestParser r;
  r.set_authenticated(false);
  EXPECT_EQ(Feed(r, "a b c d e f g h i j k\r\n", 100, &cmds), "unauthenticated multibulk length");
}

TEST(ParserTest, BulkLimitIsAParameter) {
  Limits l;
  l.max_bulk_len = 10;
  RequestParser p(l);
  std::vector<std::vector<std::string>> cmds;
  EXPECT_EQ(Feed(p, "*1\r\n$10\r\n0123456789\r\n", 1, &cmds), "");
  EXPECT_EQ(Feed(p, "*1\r\n$11\r\n", 1, &cmds), "invalid bulk length");
}

TEST(ParserTest, LargeBulkArrivingInChunksIsScannedOnceAndSizedAhead) {
  RequestParser p;
  std::string payload(1 << 20, 'x');
  std::string in = "*2\r\n$3\r\nGET\r\n$" + std::to_string(payload.size()) + "\r\n";
  size_t consumed;
  ASSERT_EQ(p.Parse(in, &consumed), R::kNeedMore);
  EXPECT_EQ(consumed, in.size());  // headers taken, waiting for the payload
  EXPECT_EQ(p.bulk_bytes_wanted(), payload.size() + 2);
  std::string rest = payload + "\r\n";
  ASSERT_EQ(p.Parse(rest, &consumed), R::kCommand);
  EXPECT_EQ(consumed, rest.size());
  EXPECT_EQ(p.args()[1].size(), payload.size());
}

TEST(ParserTest, SplitInlineArgsMatchesRedisCliRules) {
  std::vector<std::string> out;
  ASSERT_TRUE(SplitInlineArgs("  a   \"b c\"  'd'  ", &out));
  EXPECT_EQ(out, (std::vector<std::string>{"a", "b c", "d"}));
  EXPECT_FALSE(SplitInlineArgs("'abc", &out));
}

}  // namespace
}  // namespace levee::resp
