#include "cli/check.h"

#include <fcntl.h>
#include <leveldb/db.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "storage/encoding.h"
#include "storage/corruption.h"
#include "storage/engine.h"
#include "wal/log.h"

namespace levee::cli {
namespace fs = std::filesystem;
namespace {

// Holds LevelDB's LOCK file the way LevelDB does (fcntl), so no server can
// open the directory while we check, and we refuse one that is in use.
class DirLock {
 public:
  explicit DirLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR);
    if (fd_ < 0) return;
    struct flock f = {};
    f.l_type = F_WRLCK;
    f.l_whence = SEEK_SET;
    locked_ = ::fcntl(fd_, F_SETLK, &f) == 0;
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool locked() const { return locked_; }
  bool exists() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  bool locked_ = false;
};

// A scratch copy of the LevelDB directory made of hard links (table files
// are immutable) and copies (CURRENT, MANIFEST, logs), so that opening it
// — which replays and rewrites LevelDB's own log — changes nothing real.
class Scratch {
 public:
  ~Scratch() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  bool Make(const fs::path& db, std::string* err) {
    path_ = db.parent_path() / (".check-scratch-" + std::to_string(getpid()));
    std::error_code ec;
    fs::remove_all(path_, ec);
    fs::create_directories(path_, ec);
    if (ec) {
      *err = "cannot create scratch directory " + path_.string() + ": " + ec.message();
      return false;
    }
    for (const auto& e : fs::directory_iterator(db, ec)) {
      std::string name = e.path().filename().string();
      if (name == "LOCK" || name == "LOG" || name == "LOG.old" || name == storage::CorruptionLog::kMarkerName) continue;
      fs::path dst = path_ / name;
      // levee is stopped: blob files do not change either.
      bool immutable = name.ends_with(".ldb") || name.ends_with(".sst") || name.ends_with(".blob");
      std::error_code lec;
      if (immutable) fs::create_hard_link(e.path(), dst, lec);
      if (!immutable || lec) fs::copy_file(e.path(), dst, lec);
      if (lec) {
        *err = "cannot copy " + e.path().string() + ": " + lec.message();
        return false;
      }
    }
    return true;
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

}  // namespace

int RunCheck(const std::string& data_dir, bool json) {
  nlohmann::json report;
  report["data_dir"] = data_dir;
  std::vector<std::string> problems;
  fs::path db = fs::path(data_dir) / "db";
  auto finish = [&](int code) {
    if (fs::exists(db / storage::CorruptionLog::kMarkerName)) {
      // A server found damage earlier; a passing check clears its mark.
      report["corruption_marker"] = code == 0 ? "cleared: this check found no damage" : "kept";
      if (code == 0) storage::CorruptionLog::ClearMarker(db.string());
    }
    report["problems"] = problems;
    report["ok"] = code == 0;
    if (json) {
      std::cout << report.dump(2) << "\n";
    } else {
      for (auto it = report.begin(); it != report.end(); ++it) {
        if (it.key() == "problems" || it.key() == "ok") continue;
        std::cout << it.key() << ": " << (it->is_string() ? it->get<std::string>() : it->dump()) << "\n";
      }
      for (const auto& p : problems) std::cout << "PROBLEM: " << p << "\n";
      std::cout << (code == 0 ? "check passed" : code == 1 ? "check FAILED: damage found" : "check could not run")
                << "\n";
    }
    return code;
  };
  if (!fs::exists(db / "CURRENT")) {
    problems.push_back("no levee database at " + db.string() + " (missing CURRENT); is --data-dir right?");
    return finish(2);
  }
  DirLock lock((db / "LOCK").string());
  if (lock.exists() && !lock.locked()) {
    problems.push_back("data directory is in use by a running levee (LOCK held); stop it first, or check a backup");
    return finish(2);
  }
  Scratch scratch;
  std::string err;
  if (!scratch.Make(db, &err)) {
    problems.push_back(err);
    return finish(2);
  }
  uint64_t applied = 0, meta_keys = 0, keys = 0, expiry_entries = 0, blob_values = 0, blob_files = 0;
  bool counts_settled = true;
  {
    storage::EngineOptions eo;
    eo.path = scratch.path();
    eo.create_if_missing = false;
    eo.block_cache_bytes = 8 << 20;
    auto engine = storage::Engine::Open(eo);
    if (!engine.ok()) {
      problems.push_back(engine.status().message());
      return finish(engine.status().IsCorruption() ? 1 : 2);
    }
    applied = (*engine)->applied_sequence();
    meta_keys = (*engine)->key_count();
    counts_settled = !(*engine)->counts_need_recount();
    auto it = (*engine)->NewIterator(/*verify=*/true);
    storage::StoredValue v;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      leveldb::Slice k = it->key();
      if (k.size() > 0 && k[0] == storage::kDataPrefix) {
        keys++;
        if (!storage::DecodeValue(std::string_view(it->value().data(), it->value().size()), &v)) {
          problems.push_back("undecodable value for a key of " + std::to_string(k.size() - 1) + " bytes");
        } else if (v.in_blob) {
          blob_values++;
          std::string_view user_key(k.data() + 1, k.size() - 1);
          Status st = (*engine)->Resolve(user_key, &v);
          if (!st.ok() && problems.size() < 100) {
            problems.push_back("value of key '" + std::string(user_key.substr(0, 200)) + "': " + st.message());
          }
        }
      } else if (k.size() > 0 && k[0] == storage::kExpiryPrefix) {
        expiry_entries++;
      }
    }
    if (!it->status().ok()) {
      problems.push_back("LevelDB: " + it->status().ToString());
      for (const auto& d : storage::FindDamagedTables(scratch.path())) problems.push_back(d + "; restore from a backup");
    }
    blob_files = (*engine)->blobs()->Stats().files;
  }
  report["leveldb_applied_sequence"] = applied;
  report["keys"] = keys;
  report["expiry_index_entries"] = expiry_entries;
  report["blob_values"] = blob_values;
  report["blob_files"] = blob_files;
  report["key_count_settled"] = counts_settled;
  if (!counts_settled) {
    report["key_count_note"] = "levee stopped before its key count was settled; the next start recounts";
  } else if (problems.empty() && keys != meta_keys) {
    problems.push_back("key count recorded in meta (" + std::to_string(meta_keys) + ") differs from the keys found (" +
                       std::to_string(keys) + ")");
  }

  fs::path wal_dir = fs::path(data_dir) / "wal";
  std::vector<std::string> segs;
  std::error_code ec;
  if (fs::exists(wal_dir)) {
    for (const auto& e : fs::directory_iterator(wal_dir, ec)) {
      if (e.path().extension() == ".wal") segs.push_back(e.path().string());
    }
  }
  std::sort(segs.begin(), segs.end());
  uint64_t records = 0, last = 0;
  bool torn = false;
  for (size_t i = 0; i < segs.size(); i++) {
    wal::ScanResult r;
    Status st = wal::ScanSegment(segs[i], UINT64_MAX, i + 1 == segs.size(), nullptr, &r);
    if (!st.ok()) {
      problems.push_back(st.message());
      continue;
    }
    records += r.records;
    if (r.records > 0) last = r.last_sequence;
    if (r.torn_tail) {
      torn = true;
      report["log_torn_tail"] = segs[i] + ": " + r.torn_detail + " (an unacknowledged write; start-up cuts it off)";
    }
  }
  report["log_segments"] = segs.size();
  report["log_records"] = records;
  report["log_last_sequence"] = last;
  report["last_applied_sequence"] = std::max(applied, last);
  (void)torn;
  return finish(problems.empty() ? 0 : 1);
}

}  // namespace levee::cli
