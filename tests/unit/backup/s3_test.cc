#include "backup/s3.h"

#include <gtest/gtest.h>

namespace levee::backup {
namespace {

// The worked example of AWS's "Signature Calculations for the Authorization
// Header" page (GET object with a Range header).
TEST(SignV4, MatchesAwsWorkedExample) {
  S3Credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  SigV4Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  EXPECT_EQ(SignV4(r, creds, "us-east-1", "s3", "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SignV4, CanonicalQuerySortsAndEncodes) {
  EXPECT_EQ(CanonicalQuery({{"uploadId", "a/b+c"}, {"partNumber", "2"}}), "partNumber=2&uploadId=a%2Fb%2Bc");
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQuery({{"prefix", "x y"}, {"list-type", "2"}}), "list-type=2&prefix=x%20y");
  EXPECT_EQ(UriEncode("/a b/c~d", false), "/a%20b/c~d");
  EXPECT_EQ(UriEncode("/a", true), "%2Fa");
}

}  // namespace
}  // namespace levee::backup
