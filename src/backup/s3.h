// S3Store: an S3-compatible bucket (AWS S3, GCS's XML API with HMAC keys,
// MinIO, Ceph) over libcurl, signed by levee's own AWS Signature Version 4
// (SignV4 below, over OpenSSL's HMAC-SHA256) rather than libcurl 7.88's
// CURLOPT_AWS_SIGV4, which signs some requests wrongly (unsorted query
// parameters, "?uploads" without "=", unencoded paths).
//
// Objects above the multipart threshold go up in parts. 5xx, 429 and
// network errors are retried with exponential backoff; other errors are
// reported with S3's own code and message.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "backup/store.h"

namespace levee::backup {

struct S3Credentials {
  std::string access_key, secret_key, session_token;
};

// From AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else
// the [AWS_PROFILE or default] section of AWS_SHARED_CREDENTIALS_FILE or
// ~/.aws/credentials. InvalidArgument saying where it looked when none.
StatusOr<S3Credentials> LoadS3Credentials();

struct SigV4Request {
  std::string method;
  std::string path;  // not yet encoded, starting with '/'
  std::vector<std::pair<std::string, std::string>> query;    // not yet encoded
  std::vector<std::pair<std::string, std::string>> headers;  // signed; must include host and x-amz-date
  std::string payload_sha256;                                // hex, or UNSIGNED-PAYLOAD
};

// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, '/'
// kept when encode_slash is false, everything else %XX (upper case).
std::string UriEncode(std::string_view s, bool encode_slash);
// The canonical query string: parameters sorted, each "k=v" (v may be
// empty, as in "uploads="), joined by '&'.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);
// The Authorization header value for request at amz_date (YYYYMMDDTHHMMSSZ).
std::string SignV4(const SigV4Request& request, const S3Credentials& creds, const std::string& region,
                   const std::string& service, const std::string& amz_date);

std::string Sha256Hex(std::string_view data);

// url is s3://bucket/prefix?... or gs://bucket/prefix?...
StatusOr<std::unique_ptr<Store>> OpenS3Store(const std::string& url, const StoreOptions& options);

}  // namespace levee::backup
