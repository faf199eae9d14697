// Store: where a backup repository's objects live. A flat namespace of keys
// ("config", "objects/ab/<id>", "backups/<id>", "locks/<id>") over a local
// or mounted directory (file://) or an S3-compatible bucket (s3://, gs://).
//
// Put is all-or-nothing: a reader sees the whole object or none of it.
// Errors name the repository and the cause. Thread-safe: a backup calls
// one Store from several upload threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace levee::backup {

struct StoreEntry {
  std::string key;
  uint64_t size = 0;
};

// Shared by all of one operation's threads: waits so that the bytes passed
// to Take average at most bytes_per_sec (0: no limit).
class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_sec) : rate_(bytes_per_sec) {}
  void Take(uint64_t bytes);
  uint64_t rate() const { return rate_; }

 private:
  uint64_t rate_;
  std::mutex mu_;
  double next_free_s_ = 0;  // steady-clock time when the budget is back to zero
};

struct StoreOptions {
  // S3: from the URL's query or these settings (the URL wins).
  std::string endpoint;  // e.g. http://127.0.0.1:9000 (default: AWS, or GCS for gs://)
  std::string region;    // default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1 (auto for GCS)
  int path_style = -1;   // -1: path style for a custom endpoint, virtual-hosted for AWS
  uint64_t multipart_threshold = 16ull << 20;
  uint64_t part_size = 8ull << 20;
  int max_attempts = 6;         // per request: 5xx, 429 and network errors are retried
  int initial_backoff_ms = 200;  // doubled per attempt, up to 10 s
  int timeout_ms = 120000;
  // file://: objects are written with direct I/O (around the page cache)
  // where the file system allows it.
  bool direct_io = true;
};

class Store {
 public:
  virtual ~Store() = default;
  // The repository URL as given, for messages.
  virtual const std::string& url() const = 0;

  // Every call that takes a key refuses one that is not a store key
  // (backup/names.h) with InvalidArgument before touching disk or network:
  // keys can come from a repository's own listings and manifests.
  Status Put(const std::string& key, std::string_view data);
  // NotFound when the key does not exist.
  Status Get(const std::string& key, std::string* data);
  // Whether key exists; *size gets its size when it does.
  StatusOr<bool> Exists(const std::string& key, uint64_t* size);
  // prefix: "" or a key followed by '/'.
  Status List(const std::string& prefix, std::vector<StoreEntry>* out);
  // Deleting a key that does not exist is not an error.
  Status Delete(const std::string& key);
  // Makes every Put so far durable (a directory store writes objects
  // without fsync and syncs the file system once, before the manifest).
  virtual Status Flush() { return Status::OK(); }

  // Bytes moved by Put and Get (for progress and metrics).
  uint64_t bytes_sent() const { return sent_.load(); }
  uint64_t bytes_received() const { return received_.load(); }

 protected:
  // The implementations, called with checked keys.
  virtual Status DoPut(const std::string& key, std::string_view data) = 0;
  virtual Status DoGet(const std::string& key, std::string* data) = 0;
  virtual StatusOr<bool> DoExists(const std::string& key, uint64_t* size) = 0;
  virtual Status DoList(const std::string& prefix, std::vector<StoreEntry>* out) = 0;
  virtual Status DoDelete(const std::string& key) = 0;

  std::atomic<uint64_t> sent_{0}, received_{0};
};

// file:///abs/path, s3://bucket/prefix?endpoint=..&region=..&path_style=true,
// gs://bucket/prefix. A bad URL is refused naming what is wrong.
StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options);

}  // namespace levee::backup
