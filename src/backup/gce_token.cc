#include "backup/gce_token.h"

#include <curl/curl.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

namespace levee::backup {
namespace {

constexpr auto kRefreshMargin = std::chrono::seconds(60);

size_t Append(char* ptr, size_t size, size_t n, void* userdata) {
  auto* out = static_cast<std::string*>(userdata);
  if (out->size() + size * n > (1u << 20)) return 0;  // a token answer is small; stop a runaway body
  out->append(ptr, size * n);
  return size * n;
}

const char* kFix =
    "on GKE, enable Workload Identity on the node pool and annotate the Kubernetes ServiceAccount with "
    "iam.gke.io/gcp-service-account; or give levee an HMAC key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
    "AWS_SHARED_CREDENTIALS_FILE)";

}  // namespace

StatusOr<AccessToken> ParseTokenResponse(std::string_view body, std::chrono::steady_clock::time_point now) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("the metadata server's token answer is not a JSON object");
  }
  auto token = j.find("access_token");
  if (token == j.end() || !token->is_string() || token->get<std::string>().empty()) {
    return Status::InvalidArgument("the metadata server's token answer has no access_token");
  }
  auto type = j.find("token_type");
  if (type != j.end() && (!type->is_string() || type->get<std::string>() != "Bearer")) {
    return Status::InvalidArgument("the metadata server's token answer has token_type other than Bearer");
  }
  auto expires_in = j.find("expires_in");
  if (expires_in == j.end() || !expires_in->is_number_integer() || expires_in->get<int64_t>() <= 0) {
    return Status::InvalidArgument("the metadata server's token answer has no positive integer expires_in");
  }
  return AccessToken{token->get<std::string>(), now + std::chrono::seconds(expires_in->get<int64_t>())};
}

GceTokenSource::GceTokenSource(std::string host) : host_(std::move(host)) {
  if (host_.empty()) {
    const char* env = std::getenv("GCE_METADATA_HOST");
    host_ = env && *env ? env : "metadata.google.internal";
  }
}

uint64_t GceTokenSource::fetches() const {
  std::lock_guard<std::mutex> l(mu_);
  return fetches_;
}

StatusOr<std::string> GceTokenSource::Token() {
  // Held across the fetch: concurrent uploads wait for one fetch instead of
  // each asking the metadata server.
  std::lock_guard<std::mutex> l(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!cached_.value.empty() && now + kRefreshMargin < cached_.expires) return cached_.value;
  auto fresh = Fetch();
  if (!fresh.ok()) return fresh.status();
  fetches_++;
  cached_ = std::move(fresh).value();
  return cached_.value;
}

void GceTokenSource::Invalidate(const std::string& token) {
  std::lock_guard<std::mutex> l(mu_);
  if (cached_.value == token) cached_ = AccessToken();
}

StatusOr<AccessToken> GceTokenSource::Fetch() {
  std::string url = "http://" + host_ + "/computeMetadata/v1/instance/service-accounts/default/token";
  CURL* c = curl_easy_init();
  if (!c) return Status::IOError("cannot start an HTTP request to the metadata server (curl_easy_init failed)");
  std::string body;
  struct curl_slist* headers = curl_slist_append(nullptr, "Metadata-Flavor: Google");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");  // the metadata server is link-local; never through a proxy
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    return Status::IOError("no HMAC key is set and the metadata server " + host_ +
                           " cannot be reached for a Workload Identity token (" + curl_easy_strerror(rc) + "); " +
                           kFix);
  }
  if (status != 200) {
    std::string what = "the metadata server " + host_ + " refused a token with HTTP " + std::to_string(status);
    // 5xx is the metadata server's own trouble and worth retrying; 403/404
    // mean this pod has no Google identity.
    if (status >= 500) return Status::IOError(what);
    return Status::InvalidArgument(what + "; " + kFix);
  }
  auto token = ParseTokenResponse(body, std::chrono::steady_clock::now());
  if (!token.ok()) return Status::IOError(token.status().message() + " (from " + host_ + ")");
  return token;
}

}  // namespace levee::backup
