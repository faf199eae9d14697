#include "backup/s3.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

#include "backup/gce_token.h"
#include "common/coding.h"

namespace levee::backup {
namespace {

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
  return s.substr(i);
}

std::string AmzDate() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string XmlUnescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    static const std::pair<const char*, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool done = false;
    for (const auto& [name, c] : kEntities) {
      size_t len = std::strlen(name);
      if (s.substr(i, len) == name) {
        out.push_back(c);
        i += len - 1;
        done = true;
        break;
      }
    }
    if (!done) out.push_back('&');
  }
  return out;
}

// The text of each <tag>…</tag> in body, in order, from `from`.
std::vector<std::string> XmlAll(std::string_view body, const std::string& tag) {
  std::vector<std::string> out;
  std::string open = "<" + tag + ">", close = "</" + tag + ">";
  size_t pos = 0;
  while ((pos = body.find(open, pos)) != std::string_view::npos) {
    size_t start = pos + open.size();
    size_t end = body.find(close, start);
    if (end == std::string_view::npos) break;
    out.push_back(XmlUnescape(body.substr(start, end - start)));
    pos = end + close.size();
  }
  return out;
}

std::string XmlFirst(std::string_view body, const std::string& tag) {
  auto all = XmlAll(body, tag);
  return all.empty() ? std::string() : all.front();
}

size_t WriteBody(char* ptr, size_t size, size_t n, void* userdata) {
  static_cast<std::string*>(userdata)->append(ptr, size * n);
  return size * n;
}

struct HeaderSink {
  std::string etag;
  uint64_t content_length = 0;
};

size_t WriteHeader(char* ptr, size_t size, size_t n, void* userdata) {
  auto* h = static_cast<HeaderSink*>(userdata);
  std::string line(ptr, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = Lower(line.substr(0, colon));
    std::string value = Trim(line.substr(colon + 1));
    if (name == "etag") h->etag = value;
    if (name == "content-length") h->content_length = std::strtoull(value.c_str(), nullptr, 10);
  }
  return size * n;
}

struct ReadSource {
  std::string_view data;
  size_t off = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t n, void* userdata) {
  auto* s = static_cast<ReadSource*>(userdata);
  size_t len = std::min(size * n, s->data.size() - s->off);
  std::memcpy(buffer, s->data.data() + s->off, len);
  s->off += len;
  return len;
}

struct Response {
  long status = 0;
  std::string body;
  HeaderSink headers;
};

class S3Store final : public Store {
 public:
  S3Store(std::string url, std::string scheme_host, std::string host, std::string bucket, std::string prefix,
          bool path_style, std::string region, S3Credentials creds, std::shared_ptr<GceTokenSource> tokens,
          StoreOptions options)
      : url_(std::move(url)),
        scheme_host_(std::move(scheme_host)),
        host_(std::move(host)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        path_style_(path_style),
        region_(std::move(region)),
        creds_(std::move(creds)),
        tokens_(std::move(tokens)),
        options_(options) {}

  ~S3Store() override {
    for (CURL* c : idle_) curl_easy_cleanup(c);
  }

  const std::string& url() const override { return url_; }

  Status DoPut(const std::string& key, std::string_view data) override {
    if (data.size() > options_.multipart_threshold) return PutMultipart(key, data);
    Response r;
    LEVEE_RETURN_IF_ERROR(Request("PUT", key, {}, data, &r));
    if (r.status != 200) return Fail("PUT", key, r);
    sent_ += data.size();
    return Status::OK();
  }

  Status DoGet(const std::string& key, std::string* data) override {
    Response r;
    LEVEE_RETURN_IF_ERROR(Request("GET", key, {}, {}, &r));
    if (r.status == 404 && XmlFirst(r.body, "Code") != "NoSuchBucket") {
      return Status::NotFound("repository " + url_ + ": " + key + " does not exist");
    }
    if (r.status != 200 && r.status != 206) return Fail("GET", key, r);
    received_ += r.body.size();
    *data = std::move(r.body);
    return Status::OK();
  }

  StatusOr<bool> DoExists(const std::string& key, uint64_t* size) override {
    Response r;
    LEVEE_RETURN_IF_ERROR(Request("HEAD", key, {}, {}, &r));
    if (r.status == 404) {
      // HEAD has no body to tell a missing bucket from a missing key.
      return false;
    }
    if (r.status != 200) return Fail("HEAD", key, r);
    if (size) *size = r.headers.content_length;
    return true;
  }

  Status DoList(const std::string& prefix, std::vector<StoreEntry>* out) override {
    std::string token;
    std::string full = Join(prefix);
    size_t strip = prefix_.empty() ? 0 : prefix_.size() + 1;
    for (;;) {
      std::vector<std::pair<std::string, std::string>> q = {{"list-type", "2"}, {"prefix", full}};
      if (!token.empty()) q.emplace_back("continuation-token", token);
      Response r;
      LEVEE_RETURN_IF_ERROR(RequestRaw("GET", "", q, {}, &r));
      if (r.status != 200) return Fail("LIST", prefix, r);
      size_t pos = 0;
      std::string_view body = r.body;
      while ((pos = body.find("<Contents>", pos)) != std::string_view::npos) {
        size_t end = body.find("</Contents>", pos);
        if (end == std::string_view::npos) break;
        std::string_view c = body.substr(pos, end - pos);
        std::string k = XmlFirst(c, "Key");
        if (k.size() >= strip) out->push_back(StoreEntry{k.substr(strip), std::strtoull(XmlFirst(c, "Size").c_str(), nullptr, 10)});
        pos = end;
      }
      if (XmlFirst(body, "IsTruncated") != "true") break;
      token = XmlFirst(body, "NextContinuationToken");
      if (token.empty()) return Status::IOError("repository " + url_ + ": a truncated listing came without a continuation token");
    }
    return Status::OK();
  }

  Status DoDelete(const std::string& key) override {
    Response r;
    LEVEE_RETURN_IF_ERROR(Request("DELETE", key, {}, {}, &r));
    if (r.status != 204 && r.status != 200 && r.status != 404) return Fail("DELETE", key, r);
    return Status::OK();
  }

 private:
  std::string Join(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "/" + key; }

  Status PutMultipart(const std::string& key, std::string_view data) {
    Response r;
    LEVEE_RETURN_IF_ERROR(Request("POST", key, {{"uploads", ""}}, {}, &r));
    if (r.status != 200) return Fail("POST ?uploads", key, r);
    std::string upload_id = XmlFirst(r.body, "UploadId");
    if (upload_id.empty()) return Status::IOError("repository " + url_ + ": starting a multipart upload of " + key + " returned no UploadId");
    std::string complete = "<CompleteMultipartUpload>";
    Status st;
    int part = 1;
    for (size_t off = 0; off < data.size() && st.ok(); off += options_.part_size, part++) {
      std::string_view piece = data.substr(off, options_.part_size);
      Response pr;
      st = Request("PUT", key, {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}}, piece, &pr);
      if (st.ok() && pr.status != 200) st = Fail("PUT part " + std::to_string(part), key, pr);
      if (st.ok()) {
        complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + pr.headers.etag + "</ETag></Part>";
        sent_ += piece.size();
      }
    }
    complete += "</CompleteMultipartUpload>";
    if (st.ok()) {
      Response cr;
      st = Request("POST", key, {{"uploadId", upload_id}}, complete, &cr);
      // S3 may answer 200 and still report an error in the body.
      if (st.ok() && (cr.status != 200 || cr.body.find("<Error>") != std::string::npos)) st = Fail("POST ?uploadId", key, cr);
    }
    if (!st.ok()) {
      Response ar;
      (void)Request("DELETE", key, {{"uploadId", upload_id}}, {}, &ar);
    }
    return st;
  }

  Status Fail(const std::string& op, const std::string& key, const Response& r) {
    std::string code = XmlFirst(r.body, "Code"), message = XmlFirst(r.body, "Message");
    std::string what = "repository " + url_ + ": " + op + " " + key + " failed with HTTP " + std::to_string(r.status);
    if (!code.empty()) what += " " + code;
    if (!message.empty()) what += " (" + message + ")";
    if (code == "NoSuchBucket" || (r.status == 404 && op == "LIST")) {
      return Status::NotFound(what + "; bucket '" + bucket_ + "' does not exist: create it or fix the URL");
    }
    if ((r.status == 403 || r.status == 401) && tokens_) {
      return Status::InvalidArgument(what + "; the Workload Identity token from " + tokens_->host() +
                                     " was refused: grant its Google service account roles/storage.objectUser on "
                                     "bucket '" + bucket_ + "', or give levee an HMAC key instead");
    }
    if (r.status == 403 || r.status == 401) {
      return Status::InvalidArgument(what +
                                     "; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                                     "~/.aws/credentials) and the bucket's permissions");
    }
    return Status::IOError(what);
  }

  Status Request(const std::string& method, const std::string& key,
                 std::vector<std::pair<std::string, std::string>> query, std::string_view body, Response* out) {
    return RequestRaw(method, Join(key), std::move(query), body, out);
  }

  // object_key is the full key in the bucket ("" for the bucket itself).
  Status RequestRaw(const std::string& method, const std::string& object_key,
                    std::vector<std::pair<std::string, std::string>> query, std::string_view body, Response* out) {
    std::string path = path_style_ ? "/" + bucket_ + (object_key.empty() ? "" : "/" + object_key) : "/" + object_key;
    std::string payload_hash = Sha256Hex(body);
    std::string qs = CanonicalQuery(query);
    std::string full_url = scheme_host_ + UriEncode(path, false) + (qs.empty() ? "" : "?" + qs);
    int backoff = options_.initial_backoff_ms;
    std::string last_error;
    bool token_refreshed = false;
    for (int attempt = 1; attempt <= options_.max_attempts; attempt++) {
      struct curl_slist* hl = nullptr;
      std::string bearer;
      if (tokens_) {
        // GCS with Workload Identity: an OAuth bearer token instead of SigV4.
        auto token = tokens_->Token();
        if (!token.ok() && token.status().code() != Status::Code::kIOError) {
          return Status::InvalidArgument("repository " + url_ + ": " + token.status().message());
        }
        if (!token.ok()) {
          last_error = token.status().message();
          if (attempt == options_.max_attempts) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
          backoff = std::min(backoff * 2, 10000);
          continue;
        }
        bearer = std::move(token).value();
        hl = curl_slist_append(hl, ("Authorization: Bearer " + bearer).c_str());
      } else {
        std::string date = AmzDate();
        SigV4Request sr;
        sr.method = method;
        sr.path = path;
        sr.query = query;
        sr.payload_sha256 = payload_hash;
        sr.headers = {{"host", host_}, {"x-amz-content-sha256", payload_hash}, {"x-amz-date", date}};
        if (!creds_.session_token.empty()) sr.headers.emplace_back("x-amz-security-token", creds_.session_token);
        std::string auth = SignV4(sr, creds_, region_, "s3", date);
        for (const auto& [n, v] : sr.headers) {
          if (n != "host") hl = curl_slist_append(hl, (n + ": " + v).c_str());
        }
        hl = curl_slist_append(hl, ("Authorization: " + auth).c_str());
      }

      CURL* c = Acquire();
      hl = curl_slist_append(hl, "Expect:");
      hl = curl_slist_append(hl, "Content-Type:");
      *out = Response();
      ReadSource src{body, 0};
      curl_easy_reset(c);
      curl_easy_setopt(c, CURLOPT_URL, full_url.c_str());
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_ms));
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteBody);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
      curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, WriteHeader);
      curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
      if (method == "HEAD") {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
      } else if (method == "PUT") {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadBody);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
      } else if (method == "POST") {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      } else if (method != "GET") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
      CURLcode rc = curl_easy_perform(c);
      curl_slist_free_all(hl);
      if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
      Release(c);
      bool retry;
      if (rc != CURLE_OK) {
        last_error = std::string("cannot reach ") + scheme_host_ + ": " + curl_easy_strerror(rc);
        retry = true;
      } else if (out->status == 401 && tokens_ && !token_refreshed) {
        // The token was revoked or expired early: fetch a new one, once.
        tokens_->Invalidate(bearer);
        token_refreshed = true;
        attempt--;
        continue;
      } else {
        retry = out->status >= 500 || out->status == 429;
        if (retry) last_error = "HTTP " + std::to_string(out->status) + " " + XmlFirst(out->body, "Code");
      }
      if (!retry) return Status::OK();
      if (attempt == options_.max_attempts) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, 10000);
    }
    return Status::IOError("repository " + url_ + ": " + method + " " + (object_key.empty() ? "bucket" : object_key) +
                           " failed after " + std::to_string(options_.max_attempts) + " attempts: " + last_error);
  }

  CURL* Acquire() {
    std::lock_guard<std::mutex> l(mu_);
    if (!idle_.empty()) {
      CURL* c = idle_.back();
      idle_.pop_back();
      return c;
    }
    return curl_easy_init();
  }
  void Release(CURL* c) {
    std::lock_guard<std::mutex> l(mu_);
    idle_.push_back(c);
  }

  const std::string url_, scheme_host_, host_, bucket_, prefix_;
  const bool path_style_;
  const std::string region_;
  const S3Credentials creds_;
  const std::shared_ptr<GceTokenSource> tokens_;  // set: GCS with Workload Identity instead of an HMAC key
  const StoreOptions options_;
  std::mutex mu_;
  std::vector<CURL*> idle_;  // handles keep their connections between requests
};

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), n));
}

std::string UriEncode(std::string_view s, bool encode_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  for (const auto& [k, v] : query) enc.emplace_back(UriEncode(k, true), UriEncode(v, true));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

std::string SignV4(const SigV4Request& request, const S3Credentials& creds, const std::string& region,
                   const std::string& service, const std::string& amz_date) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [n, v] : request.headers) headers.emplace_back(Lower(n), Trim(v));
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [n, v] : headers) {
    canonical_headers += n + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += n;
  }
  std::string canonical = request.method + "\n" + UriEncode(request.path, false) + "\n" + CanonicalQuery(request.query) +
                          "\n" + canonical_headers + "\n" + signed_headers + "\n" + request.payload_sha256;
  if (std::getenv("LEVEE_DEBUG_SIGV4")) std::fprintf(stderr, "canonical request:\n%s\n--\n", canonical.c_str());
  std::string day = amz_date.substr(0, 8);
  std::string scope = day + "/" + region + "/" + service + "/aws4_request";
  std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(canonical);
  std::string k = Hmac("AWS4" + creds.secret_key, day);
  k = Hmac(k, region);
  k = Hmac(k, service);
  k = Hmac(k, "aws4_request");
  std::string signature = HexEncode(Hmac(k, to_sign));
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope + ",SignedHeaders=" + signed_headers +
         ",Signature=" + signature;
}

StatusOr<S3Credentials> LoadS3Credentials() {
  S3Credentials c;
  c.access_key = Env("AWS_ACCESS_KEY_ID");
  c.secret_key = Env("AWS_SECRET_ACCESS_KEY");
  c.session_token = Env("AWS_SESSION_TOKEN");
  if (!c.access_key.empty() && !c.secret_key.empty()) return c;
  std::string file = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !Env("HOME").empty()) file = Env("HOME") + "/.aws/credentials";
  std::string profile = Env("AWS_PROFILE").empty() ? "default" : Env("AWS_PROFILE");
  std::ifstream f(file);
  std::string line, section;
  while (f && std::getline(f, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      continue;
    }
    if (section != profile) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = Trim(line.substr(0, eq)), v = Trim(line.substr(eq + 1));
    if (k == "aws_access_key_id") c.access_key = v;
    if (k == "aws_secret_access_key") c.secret_key = v;
    if (k == "aws_session_token") c.session_token = v;
  }
  if (c.access_key.empty() || c.secret_key.empty()) {
    return Status::InvalidArgument(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for GCS: an HMAC key's access id and "
        "secret), or put them in the [" + profile + "] section of " + (file.empty() ? "~/.aws/credentials" : file));
  }
  return c;
}

StatusOr<std::unique_ptr<Store>> OpenS3Store(const std::string& url, const StoreOptions& options) {
  static CurlGlobal global;
  bool gcs = url.rfind("gs://", 0) == 0;
  std::string rest = url.substr(5);
  std::string query;
  if (size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (bucket.empty()) return Status::InvalidArgument("backup repository " + url + " names no bucket (s3://BUCKET/PREFIX)");
  std::string endpoint = options.endpoint, region = options.region;
  int path_style = options.path_style;
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find('&', pos);
    std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    pos = amp == std::string::npos ? query.size() : amp + 1;
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "endpoint") {
      endpoint = v;
    } else if (k == "region") {
      region = v;
    } else if (k == "path_style") {
      if (v != "true" && v != "false") {
        return Status::InvalidArgument("backup repository " + url + ": path_style must be true or false, not '" + v + "'");
      }
      path_style = v == "true";
    } else {
      return Status::InvalidArgument("backup repository " + url + ": unknown option '" + k +
                                     "' (known: endpoint, region, path_style)");
    }
  }
  if (region.empty()) region = Env("AWS_REGION");
  if (region.empty()) region = Env("AWS_DEFAULT_REGION");
  if (region.empty()) region = gcs ? "auto" : "us-east-1";
  bool custom = !endpoint.empty();
  if (endpoint.empty()) endpoint = gcs ? "https://storage.googleapis.com" : "https://s3." + region + ".amazonaws.com";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos || (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0)) {
    return Status::InvalidArgument("backup repository " + url + ": endpoint '" + endpoint +
                                   "' must start with http:// or https://");
  }
  std::string scheme = endpoint.substr(0, scheme_end + 3);
  std::string host = endpoint.substr(scheme_end + 3);
  if (host.empty() || host.find('/') != std::string::npos) {
    return Status::InvalidArgument("backup repository " + url + ": endpoint '" + endpoint + "' must be scheme://host[:port]");
  }
  if (path_style < 0) path_style = custom ? 1 : 0;
  if (!path_style) host = bucket + "." + host;
  auto creds = LoadS3Credentials();
  std::shared_ptr<GceTokenSource> tokens;
  if (!creds.ok() && gcs) {
    // No HMAC key for gs://: the pod's Google identity (Workload Identity).
    // One token source per process, so one token serves every backup,
    // verify and restore until it nears expiry.
    static std::mutex shared_mu;
    static std::shared_ptr<GceTokenSource> shared;
    std::lock_guard<std::mutex> l(shared_mu);
    auto candidate = std::make_shared<GceTokenSource>();
    if (!shared || shared->host() != candidate->host()) shared = candidate;
    tokens = shared;
  } else if (!creds.ok()) {
    return Status::InvalidArgument("backup repository " + url + ": " + creds.status().message());
  }
  return std::unique_ptr<Store>(std::make_unique<S3Store>(url, scheme + host, host, bucket, prefix, path_style != 0,
                                                          region, creds.ok() ? creds.value() : S3Credentials(),
                                                          std::move(tokens), options));
}

}  // namespace levee::backup
