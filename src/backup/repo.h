// Repository: a backup repository on a Store (layout and formats in
// docs/formats/backup.md).
//
//   config              what kind of repository: format, id, encryption, key id
//   objects/ab/<id>     content-addressed objects (backup/object.h)
//   backups/<id>        one manifest per backup, written last: the commit point
//   locks/<id>          who is backing up (shared) or pruning (exclusive)
//
// Thread-safe where the Store is: object calls come from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backup/object.h"
#include "backup/store.h"
#include "common/status.h"

namespace levee::backup {

inline constexpr int kRepoFormat = 1;

struct ChunkRef {
  std::string id;     // content id of the chunk's plaintext
  uint64_t size = 0;  // plaintext bytes
};

struct FileEntry {
  std::string path;  // in the data directory: "db/000005.ldb", "wal/…"
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::vector<ChunkRef> chunks;  // in order; their sizes add up to size
};

struct Manifest {
  int format = kRepoFormat;
  std::string id;  // 20261121T101500Z-3fa2c1: sorts by time
  int64_t time_ms = 0;
  std::string levee_version;
  std::string source;       // "server 127.0.0.1:6379" or "data-dir /path"
  std::string instance_id;  // the backed-up data directory's instance id
  uint64_t applied_sequence = 0;
  std::string digest;        // DEBUG DIGEST at the barrier (empty when not taken)
  int64_t digest_time_ms = 0;  // keys expired at this time are left out of digest
  uint64_t barrier_us = 0;   // how long writes were held
  std::vector<FileEntry> files;
  uint64_t bytes = 0;             // sum of file sizes
  uint64_t read_bytes = 0;        // of those, read from the source (the rest was already in the repository)
  uint64_t new_bytes = 0;         // plaintext of objects uploaded by this backup
  uint64_t new_stored_bytes = 0;  // their stored (compressed, encrypted) size
  int64_t duration_ms = 0;
};

std::string ManifestToJson(const Manifest& m);
// what names the object in errors. The manifest's id must be a backup id and
// equal key_id (the name it is stored under, "backups/<key_id>"); its chunk
// ids must be object ids and its file paths data-directory paths
// (backup/names.h): anything else is Corruption, since a planted manifest's
// names become local paths and store keys on restore and prune.
StatusOr<Manifest> ManifestFromJson(const std::string& text, const std::string& what, std::string_view key_id);

struct RepoOptions {
  StoreOptions store;
  std::shared_ptr<const Key> key;  // null: unencrypted
  bool create = false;             // create the repository if there is none
  int64_t lock_ttl_ms = 5 * 60 * 1000;
};

class RepoLock;

class Repository {
 public:
  // Opens url; checks the key against the repository's: a repository made
  // with a key needs that key, one made without refuses a key.
  static StatusOr<std::unique_ptr<Repository>> Open(const std::string& url, const RepoOptions& options);

  Store* store() { return store_.get(); }
  const std::string& url() const { return store_->url(); }
  const Key* key() const { return options_.key.get(); }
  const std::string& id() const { return id_; }

  static std::string ObjectKey(const std::string& id) { return "objects/" + id.substr(0, 2) + "/" + id; }
  StatusOr<bool> HasObject(const std::string& id);
  Status PutObject(const std::string& id, std::string_view stored);
  // The plaintext of object id, checked against its id: an error names the
  // object when it is missing, damaged, or of another key.
  StatusOr<std::string> ReadObject(const std::string& id);
  // id -> stored size.
  Status ListObjects(std::map<std::string, uint64_t>* out);

  Status WriteManifest(const Manifest& m);
  // Every readable manifest, oldest first. Unreadable ones are errors.
  Status ListManifests(std::vector<Manifest>* out);
  // "latest" (or empty) for the newest.
  StatusOr<Manifest> FindManifest(const std::string& id);
  Status DeleteManifest(const std::string& id);

  // Shared locks (backups) coexist; an exclusive one (prune) excludes all.
  // Waits up to wait_ms for conflicting locks to go; expired locks are
  // ignored. The lock is refreshed until the RepoLock is destroyed.
  StatusOr<std::unique_ptr<RepoLock>> Lock(bool exclusive, int64_t wait_ms, const std::string& what);
  // Deletes locks whose expiry has passed; how many.
  StatusOr<int> RemoveStaleLocks();

 private:
  friend class RepoLock;
  Repository(std::unique_ptr<Store> store, RepoOptions options) : store_(std::move(store)), options_(std::move(options)) {}
  std::unique_ptr<Store> store_;
  RepoOptions options_;
  std::string id_;
};

class RepoLock {
 public:
  ~RepoLock();
  RepoLock(const RepoLock&) = delete;
  RepoLock& operator=(const RepoLock&) = delete;
  const std::string& key() const { return key_; }

 private:
  friend class Repository;
  RepoLock(Repository* repo, std::string key, std::string body_prefix) : repo_(repo), key_(std::move(key)), prefix_(std::move(body_prefix)) {}
  Status Refresh();
  Repository* repo_;
  std::string key_, prefix_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread refresher_;
};

// "20261121T101500Z-3fa2c1" for a backup taken at time_ms.
std::string NewBackupId(int64_t time_ms);
int64_t NowMs();

}  // namespace levee::backup
