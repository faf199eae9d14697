#include "resp/reply.h"

#include <gtest/gtest.h>

namespace levee::resp {
namespace {

TEST(ReplyTest, Resp2AndResp3Forms) {
  std::string a, b;
  ReplyBuilder r2(&a, 2), r3(&b, 3);
  for (ReplyBuilder* r : {&r2, &r3}) {
    r->MapHeader(1);
    r->Bulk("k");
    r->Null();
    r->Double(1.5);
    r->Bool(true);
    r->NullArray();
  }
  EXPECT_EQ(a, "*2\r\n$1\r\nk\r\n$-1\r\n$3\r\n1.5\r\n:1\r\n*-1\r\n");
  EXPECT_EQ(b, "%1\r\n$1\r\nk\r\n_\r\n,1.5\r\n#t\r\n_\r\n");
}

TEST(ReplyTest, ErrorsCannotBreakFraming) {
  std::string out;
  ReplyBuilder r(&out, 2);
  r.Error("ERR bad\r\nthing");
  EXPECT_EQ(out, "-ERR bad  thing\r\n");
}

TEST(ReplyTest, IntegersAndVerbatim) {
  std::string a, b;
  ReplyBuilder r2(&a, 2), r3(&b, 3);
  r2.Integer(-42);
  r2.Verbatim("x");
  r3.Verbatim("x");
  EXPECT_EQ(a, ":-42\r\n$1\r\nx\r\n");
  EXPECT_EQ(b, "=5\r\ntxt:x\r\n");
}

}  // namespace
}  // namespace levee::resp
