#include "common/coding.h"

#include <gtest/gtest.h>

namespace levee {
namespace {

TEST(CodingTest, VarintRoundTripsAndRejectsTruncation) {
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, 1ull << 35, ~0ull}) {
    std::string s;
    PutVarint64(&s, v);
    std::string_view in = s;
    uint64_t out;
    ASSERT_TRUE(GetVarint64(&in, &out));
    EXPECT_EQ(out, v);
    EXPECT_TRUE(in.empty());
    if (s.size() > 1) {
      std::string_view cut(s.data(), s.size() - 1);
      EXPECT_FALSE(GetVarint64(&cut, &out));
    }
  }
}

TEST(CodingTest, BigEndianOrderEqualsNumericOrder) {
  std::string a, b;
  PutBigEndian64(&a, 255);
  PutBigEndian64(&b, 256);
  EXPECT_LT(a, b);
  EXPECT_EQ(DecodeBigEndian64(b.data()), 256u);
}

TEST(CodingTest, LengthPrefixedRejectsOverlongLength) {
  std::string s;
  PutVarint64(&s, 10);
  s += "abc";
  std::string_view in = s, out;
  EXPECT_FALSE(GetLengthPrefixed(&in, &out));
}

TEST(CodingTest, Crc32MatchesKnownValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the CRC-32 check value
}

TEST(CodingTest, Crc32ExtendEqualsTheCrcOfTheJoinedBytes) {
  EXPECT_EQ(Crc32Extend(Crc32("1234"), "56789"), 0xCBF43926u);
  EXPECT_EQ(Crc32Extend(Crc32Extend(Crc32(""), "123456789"), ""), 0xCBF43926u);
}

}  // namespace
}  // namespace levee
