#include "backup/repo.h"

#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "backup/json_fields.h"
#include "backup/names.h"
#include "common/coding.h"
#include "common/version.h"

namespace levee::backup {
namespace {

using json = nlohmann::json;

std::string RandomHexBytes(size_t n) {
  std::string b(n, '\0');
  randombytes_buf(b.data(), n);
  return HexEncode(b);
}

std::string HostName() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string NewBackupId(int64_t time_ms) {
  std::time_t t = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  if (sodium_init() < 0) std::abort();
  return std::string(buf) + "-" + RandomHexBytes(3);
}

std::string ManifestToJson(const Manifest& m) {
  json files = json::array();
  for (const auto& f : m.files) {
    json chunks = json::array();
    for (const auto& c : f.chunks) chunks.push_back({{"id", c.id}, {"size", c.size}});
    files.push_back({{"path", f.path}, {"size", f.size}, {"mtime_ns", f.mtime_ns}, {"chunks", chunks}});
  }
  json j = {{"format", m.format},
            {"id", m.id},
            {"time_ms", m.time_ms},
            {"levee_version", m.levee_version},
            {"source", m.source},
            {"instance_id", m.instance_id},
            {"applied_sequence", m.applied_sequence},
            {"digest", m.digest},
            {"digest_time_ms", m.digest_time_ms},
            {"barrier_us", m.barrier_us},
            {"bytes", m.bytes},
            {"read_bytes", m.read_bytes},
            {"new_bytes", m.new_bytes},
            {"new_stored_bytes", m.new_stored_bytes},
            {"duration_ms", m.duration_ms},
            {"files", files}};
  return j.dump();
}

StatusOr<Manifest> ManifestFromJson(const std::string& text, const std::string& what, std::string_view key_id) {
  try {
    json j = json::parse(text);
    Manifest m;
    m.format = JsonIntAt<int>(j, "format");
    if (m.format > kRepoFormat) {
      return Status::InvalidArgument(what + " has format " + std::to_string(m.format) + "; this levee reads up to " +
                                     std::to_string(kRepoFormat) + ": use a newer levee");
    }
    m.id = j.at("id").get<std::string>();
    if (!IsBackupId(m.id)) {
      return Status::Corruption(what + ": its id is not a backup id (letters, digits, '.', '_', '-'); refusing it");
    }
    if (m.id != key_id) {
      return Status::Corruption(what + ": its id '" + m.id + "' is not the name it is stored under ('" +
                                std::string(key_id) + "'); refusing it");
    }
    m.time_ms = JsonIntAt<int64_t>(j, "time_ms");
    m.levee_version = j.value("levee_version", "");
    m.source = j.value("source", "");
    m.instance_id = j.value("instance_id", "");
    m.applied_sequence = JsonIntAt<uint64_t>(j, "applied_sequence");
    m.digest = j.value("digest", "");
    m.digest_time_ms = JsonIntOr<int64_t>(j, "digest_time_ms", 0);
    m.barrier_us = JsonIntOr<uint64_t>(j, "barrier_us", 0);
    m.bytes = JsonIntOr<uint64_t>(j, "bytes", 0);
    m.read_bytes = JsonIntOr<uint64_t>(j, "read_bytes", 0);
    m.new_bytes = JsonIntOr<uint64_t>(j, "new_bytes", 0);
    m.new_stored_bytes = JsonIntOr<uint64_t>(j, "new_stored_bytes", 0);
    m.duration_ms = JsonIntOr<int64_t>(j, "duration_ms", 0);
    for (const auto& f : j.at("files")) {
      FileEntry e;
      e.path = f.at("path").get<std::string>();
      e.size = JsonIntAt<uint64_t>(f, "size");
      e.mtime_ns = JsonIntOr<int64_t>(f, "mtime_ns", 0);
      uint64_t sum = 0;
      for (const auto& c : f.at("chunks")) {
        e.chunks.push_back(ChunkRef{c.at("id").get<std::string>(), JsonIntAt<uint64_t>(c, "size")});
        if (!IsObjectId(e.chunks.back().id)) {
          return Status::Corruption(what + ": a chunk of " + e.path + " has an id that is not an object id");
        }
        if (e.chunks.back().size > UINT64_MAX - sum) {
          return Status::Corruption(what + ": the chunk sizes of " + e.path + " overflow");
        }
        sum += e.chunks.back().size;
      }
      if (sum != e.size) return Status::Corruption(what + ": the chunks of " + e.path + " do not add up to its size");
      if (!IsDataPath(e.path)) {
        return Status::Corruption(what + ": file path '" + e.path + "' is not a data-directory path");
      }
      m.files.push_back(std::move(e));
    }
    return m;
  } catch (const std::exception& e) {
    return Status::Corruption(what + " is not a readable manifest: " + e.what());
  }
}

StatusOr<std::unique_ptr<Repository>> Repository::Open(const std::string& url, const RepoOptions& options) {
  if (sodium_init() < 0) return Status::IOError("libsodium failed to initialise");
  auto store = OpenStore(url, options.store);
  if (!store.ok()) return store.status();
  std::unique_ptr<Repository> repo(new Repository(std::move(store.value()), options));
  std::string text;
  Status st = repo->store_->Get("config", &text);
  if (st.code() == Status::Code::kNotFound) {
    if (!options.create) {
      return Status::NotFound("no levee backup repository at " + url + " (it has no config object; a first `levee backup create` makes one)");
    }
    json c = {{"format", kRepoFormat},
              {"id", RandomHexBytes(16)},
              {"created_ms", NowMs()},
              {"encryption", options.key ? "xchacha20poly1305-secretstream" : "none"},
              {"key_id", options.key ? options.key->id() : ""},
              {"levee_version", kVersion}};
    LEVEE_RETURN_IF_ERROR(repo->store_->Put("config", c.dump(2) + "\n"));
    text = c.dump();
  } else if (!st.ok()) {
    return st;
  }
  try {
    json c = json::parse(text);
    int format = JsonIntAt<int>(c, "format");
    if (format > kRepoFormat) {
      return Status::InvalidArgument("backup repository " + url + " has format " + std::to_string(format) +
                                     "; this levee knows up to " + std::to_string(kRepoFormat) + ": use a newer levee");
    }
    repo->id_ = c.at("id").get<std::string>();
    std::string enc = c.at("encryption").get<std::string>();
    std::string key_id = c.value("key_id", "");
    if (enc == "none" && options.key) {
      return Status::InvalidArgument("backup repository " + url +
                                     " was created without encryption, but a key was given (id " + options.key->id() +
                                     "); leave out --backup-key-file for it, or back up to a new repository to encrypt");
    }
    if (enc != "none" && !options.key) {
      return Status::InvalidArgument("backup repository " + url + " is encrypted with key id " + key_id +
                                     "; give that key with --backup-key-file");
    }
    if (enc != "none" && options.key->id() != key_id) {
      return Status::InvalidArgument("backup repository " + url + " is encrypted with key id " + key_id +
                                     ", but the key given has id " + options.key->id() + "; use the repository's key");
    }
  } catch (const std::exception& e) {
    return Status::Corruption("backup repository " + url + ": its config object is unreadable: " + e.what());
  }
  return repo;
}

StatusOr<bool> Repository::HasObject(const std::string& id) { return store_->Exists(ObjectKey(id), nullptr); }

Status Repository::PutObject(const std::string& id, std::string_view stored) { return store_->Put(ObjectKey(id), stored); }

StatusOr<std::string> Repository::ReadObject(const std::string& id) {
  std::string stored;
  Status st = store_->Get(ObjectKey(id), &stored);
  if (!st.ok()) {
    if (st.code() == Status::Code::kNotFound) return Status::NotFound("object " + id + " is missing from " + url());
    return st;
  }
  auto plain = DecodeObject(stored, key(), "object " + id);
  if (!plain.ok()) return plain.status();
  if (ContentId(plain.value(), key()) != id) {
    return Status::Corruption("object " + id + " is damaged: its content does not hash to its name");
  }
  return plain;
}

Status Repository::ListObjects(std::map<std::string, uint64_t>* out) {
  std::vector<StoreEntry> entries;
  LEVEE_RETURN_IF_ERROR(store_->List("objects/", &entries));
  for (const auto& e : entries) {
    // Only objects/ab/<id> is an object; anything else under objects/ is not
    // levee's, and prune must not delete it.
    size_t slash = e.key.rfind('/');
    std::string id = e.key.substr(slash + 1);
    if (IsObjectId(id) && e.key == ObjectKey(id)) (*out)[id] = e.size;
  }
  return Status::OK();
}

Status Repository::WriteManifest(const Manifest& m) {
  if (!IsBackupId(m.id)) return Status::InvalidArgument("refusing to write backup '" + m.id.substr(0, 200) + "': not a backup id");
  return store_->Put("backups/" + m.id, EncodeObject(ManifestToJson(m), Compression::kIfSmaller, key()));
}

Status Repository::ListManifests(std::vector<Manifest>* out) {
  std::vector<StoreEntry> entries;
  LEVEE_RETURN_IF_ERROR(store_->List("backups/", &entries));
  std::sort(entries.begin(), entries.end(), [](const StoreEntry& a, const StoreEntry& b) { return a.key < b.key; });
  for (const auto& e : entries) {
    std::string stored;
    LEVEE_RETURN_IF_ERROR(store_->Get(e.key, &stored));
    auto text = DecodeObject(stored, key(), "manifest " + e.key);
    if (!text.ok()) return text.status();
    auto m = ManifestFromJson(text.value(), "manifest " + e.key, std::string_view(e.key).substr(8));
    if (!m.ok()) return m.status();
    out->push_back(std::move(m.value()));
  }
  std::stable_sort(out->begin(), out->end(), [](const Manifest& a, const Manifest& b) { return a.time_ms < b.time_ms; });
  return Status::OK();
}

StatusOr<Manifest> Repository::FindManifest(const std::string& id) {
  if (id.empty() || id == "latest") {
    std::vector<Manifest> all;
    LEVEE_RETURN_IF_ERROR(ListManifests(&all));
    if (all.empty()) return Status::NotFound("backup repository " + url() + " has no backups yet");
    return all.back();
  }
  if (!IsBackupId(id)) {
    return Status::InvalidArgument("'" + id.substr(0, 200) +
                                   "' is not a backup id (letters, digits, '.', '_', '-'; `levee backup list` shows them)");
  }
  std::string stored;
  Status st = store_->Get("backups/" + id, &stored);
  if (st.code() == Status::Code::kNotFound) {
    return Status::NotFound("backup " + id + " is not in " + url() + " (`levee backup list` shows the backups)");
  }
  LEVEE_RETURN_IF_ERROR(st);
  auto text = DecodeObject(stored, key(), "manifest backups/" + id);
  if (!text.ok()) return text.status();
  return ManifestFromJson(text.value(), "manifest backups/" + id, id);
}

Status Repository::DeleteManifest(const std::string& id) {
  if (!IsBackupId(id)) return Status::InvalidArgument("refusing to delete backup '" + id.substr(0, 200) + "': not a backup id");
  return store_->Delete("backups/" + id);
}

StatusOr<std::unique_ptr<RepoLock>> Repository::Lock(bool exclusive, int64_t wait_ms, const std::string& what) {
  std::string key = std::string("locks/") + (exclusive ? "exclusive-" : "shared-") + RandomHexBytes(8);
  json body = {{"exclusive", exclusive}, {"what", what}, {"host", HostName()}, {"pid", static_cast<int64_t>(::getpid())}};
  std::string prefix = body.dump();
  std::unique_ptr<RepoLock> lock(new RepoLock(this, key, prefix));
  std::mt19937_64 rng(std::random_device{}());
  int64_t deadline = NowMs() + wait_ms;
  for (;;) {
    LEVEE_RETURN_IF_ERROR(lock->Refresh());
    std::vector<StoreEntry> locks;
    Status st = store_->List("locks/", &locks);
    std::string conflict;
    for (const auto& e : locks) {
      if (!st.ok()) break;
      if (e.key == key) continue;
      bool other_exclusive = e.key.find("locks/exclusive-") == 0;
      if (!exclusive && !other_exclusive) continue;
      std::string text;
      Status gs = store_->Get(e.key, &text);
      if (gs.code() == Status::Code::kNotFound) continue;  // released meanwhile
      if (!gs.ok()) {
        st = gs;
        break;
      }
      try {
        json o = json::parse(text);
        if (JsonIntOr<int64_t>(o, "expires_ms", 0) < NowMs()) continue;  // stale: its holder died
        conflict = e.key + " (" + o.value("what", "") + " on " + o.value("host", "") + " pid " +
                   std::to_string(JsonIntOr<int64_t>(o, "pid", 0)) + ")";
      } catch (const std::exception&) {
        continue;  // half-written by a store without atomic puts: treat as stale
      }
      break;
    }
    if (!st.ok()) {
      (void)store_->Delete(key);
      return st;
    }
    if (conflict.empty()) break;
    (void)store_->Delete(key);
    if (NowMs() >= deadline) {
      return Status::Busy("backup repository " + url() + " is locked by " + conflict + "; try again when it is done");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + static_cast<int64_t>(rng() % 800)));
  }
  RepoLock* l = lock.get();
  lock->refresher_ = std::thread([l, ttl = options_.lock_ttl_ms] {
    std::unique_lock<std::mutex> g(l->mu_);
    while (!l->cv_.wait_for(g, std::chrono::milliseconds(ttl / 3), [l] { return l->stop_; })) {
      g.unlock();
      (void)l->Refresh();  // a missed refresh is retried; the ttl allows two
      g.lock();
    }
  });
  return lock;
}

Status RepoLock::Refresh() {
  json body = json::parse(prefix_);
  body["expires_ms"] = NowMs() + repo_->options_.lock_ttl_ms;
  return repo_->store_->Put(key_, body.dump());
}

RepoLock::~RepoLock() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  (void)repo_->store_->Delete(key_);
}

StatusOr<int> Repository::RemoveStaleLocks() {
  std::vector<StoreEntry> locks;
  LEVEE_RETURN_IF_ERROR(store_->List("locks/", &locks));
  int removed = 0;
  for (const auto& e : locks) {
    std::string text;
    if (!store_->Get(e.key, &text).ok()) continue;
    try {
      if (JsonIntOr<int64_t>(json::parse(text), "expires_ms", 0) >= NowMs()) continue;
    } catch (const std::exception&) {
    }
    LEVEE_RETURN_IF_ERROR(store_->Delete(e.key));
    removed++;
  }
  return removed;
}

}  // namespace levee::backup
