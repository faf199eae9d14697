// GceTokenSource: OAuth 2.0 access tokens for GCS from the GCE metadata
// server, which is how a pod on GKE with Workload Identity (or a VM with a
// service account) proves who it is without any key on disk.
//
//   GET http://metadata.google.internal/computeMetadata/v1/instance/
//       service-accounts/default/token
//   Metadata-Flavor: Google
//   -> {"access_token": "...", "expires_in": 3599, "token_type": "Bearer"}
//
// GCE_METADATA_HOST (host[:port]) replaces metadata.google.internal, as in
// Google's own client libraries. A token is reused until a minute before it
// expires (the metadata server itself hands out a fresh one five minutes
// before), and dropped at once when the store answers 401.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace levee::backup {

struct AccessToken {
  std::string value;
  std::chrono::steady_clock::time_point expires;
};

// Parses the metadata server's JSON answer. InvalidArgument naming what is
// missing or wrong (the body is never echoed: it holds a credential).
StatusOr<AccessToken> ParseTokenResponse(std::string_view body, std::chrono::steady_clock::time_point now);

class GceTokenSource {
 public:
  // host: host[:port] of the metadata server; empty means GCE_METADATA_HOST
  // or metadata.google.internal.
  explicit GceTokenSource(std::string host = "");

  // A valid token, fetched when none is cached or the cached one is about to
  // expire. Errors say what to check (Workload Identity, the node's service
  // account, or an HMAC key instead).
  StatusOr<std::string> Token();
  // The store refused `token`: the next Token() fetches a new one.
  void Invalidate(const std::string& token);

  const std::string& host() const { return host_; }
  uint64_t fetches() const;

 private:
  StatusOr<AccessToken> Fetch();

  std::string host_;
  mutable std::mutex mu_;
  AccessToken cached_;
  uint64_t fetches_ = 0;
};

}  // namespace levee::backup
