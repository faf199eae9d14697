#include "storage/corruption.h"

#include <fcntl.h>
#include <unistd.h>

#include <leveldb/env.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/table.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "storage/engine.h"

namespace levee::storage {
namespace {

thread_local uint64_t t_last_number = 0;
thread_local bool t_last_sst = false;

std::string TableName(uint64_t number, bool sst) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06llu.%s", static_cast<unsigned long long>(number), sst ? "sst" : "ldb");
  return buf;
}

}  // namespace

void NoteTableRead(uint64_t file_number, bool sst) {
  t_last_number = file_number;
  t_last_sst = sst;
}

std::string LastTableRead() { return t_last_number == 0 ? std::string() : TableName(t_last_number, t_last_sst); }

std::vector<std::string> FindDamagedTables(const std::string& db_dir, const std::atomic<bool>* stop) {
  namespace fs = std::filesystem;
  leveldb::Env* env = leveldb::Env::Default();
  leveldb::Options o;
  o.paranoid_checks = true;
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  std::error_code ec;
  std::vector<fs::path> tables;
  for (const auto& e : fs::directory_iterator(db_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.ends_with(".ldb") || name.ends_with(".sst")) tables.push_back(e.path());
  }
  std::sort(tables.begin(), tables.end());
  std::vector<std::string> damaged;
  for (const auto& path : tables) {
    if (stop != nullptr && stop->load()) break;
    uint64_t size = 0;
    leveldb::RandomAccessFile* raw = nullptr;
    leveldb::Status s = env->GetFileSize(path.string(), &size);
    if (s.ok()) s = env->NewRandomAccessFile(path.string(), &raw);
    if (s.IsNotFound() || (!s.ok() && !fs::exists(path, ec))) continue;  // compacted away meanwhile
    std::unique_ptr<leveldb::RandomAccessFile> file(raw);
    leveldb::Table* t = nullptr;
    if (s.ok()) s = leveldb::Table::Open(o, file.get(), size, &t);
    std::unique_ptr<leveldb::Table> table(t);
    if (s.ok()) {
      std::unique_ptr<leveldb::Iterator> it(table->NewIterator(ro));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
      }
      s = it->status();
    }
    if (!s.ok()) damaged.push_back("db/" + path.filename().string() + ": " + s.ToString());
  }
  return damaged;
}

CorruptionLog::CorruptionLog(std::string db_dir) : db_dir_(std::move(db_dir)) {
  std::ifstream f(std::filesystem::path(db_dir_) / kMarkerName);
  if (!f) return;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::lock_guard<std::mutex> l(mu_);
  if (j.is_object()) {
    last_file_ = j.value("file", "");
    last_error_ = j.value("error", "");
  }
  marked_ = true;
  logging::Error("storage",
                 "an earlier run found damage in this database and no `levee check` has passed since: check it "
                 "(levee check --data-dir) and restore from a backup if it fails (docs/runbooks/storage.md)",
                 {{"file", last_file_}, {"error", last_error_}, {"marker", db_dir_ + "/" + kMarkerName}});
}

CorruptionLog::~CorruptionLog() {
  stop_ = true;
  if (survey_.joinable()) survey_.join();
}

Status CorruptionLog::Note(const leveldb::Status& s, std::string_view what, bool point_read) {
  if (s.ok()) return Status::OK();
  if (!s.IsCorruption()) return FromLevelDB(s, what);
  std::string text = s.ToString();
  std::string file;
  if (point_read && text.find(".ldb") == std::string::npos && text.find(".sst") == std::string::npos &&
      text.find(".log") == std::string::npos && text.find("MANIFEST") == std::string::npos) {
    std::string table = LastTableRead();
    if (!table.empty()) file = "db/" + table;
  }
  Record(file, text);
  if (file.empty()) StartSurvey();
  return Status::Corruption(std::string(what) + ": " + text + (file.empty() ? "" : " in " + file) +
                            "; the database is damaged: `levee check` names every damaged file, and "
                            "docs/runbooks/storage.md says what to do");
}

void CorruptionLog::NoteBackground(const std::string& line) {
  Record("", line);
  StartSurvey();
}

void CorruptionLog::StartSurvey() {
  if (survey_started_.exchange(true)) return;
  survey_ = std::thread([this] {
    logging::Warn("storage", "surveying every table file to name the damaged ones (once per run)", {{"dir", db_dir_}});
    for (const std::string& found : FindDamagedTables(db_dir_, &stop_)) {
      const std::string file = found.substr(0, found.find(':'));
      {
        std::lock_guard<std::mutex> l(mu_);
        last_file_ = file;
      }
      logging::Error("storage", "the table file survey found damage in " + file, {{"file", file}, {"error", found}});
      WriteMarker(file, found);
    }
  });
}

void CorruptionLog::Record(const std::string& file, const std::string& error) {
  count_++;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!file.empty() || last_file_.empty()) last_file_ = file;
    last_error_ = error;
  }
  static logging::RateLimit limit(10);
  limit.Log(logging::Severity::kError, "storage",
            "LevelDB found damaged data" + (file.empty() ? std::string() : " in " + file),
            {{"file", file}, {"error", error}, {"count", count_.load()}});
  if (marked_.exchange(true)) return;
  WriteMarker(file, error);
}

void CorruptionLog::WriteMarker(const std::string& file, const std::string& error) {
  // Atomically: temporary file, fsync, rename.
  nlohmann::json j = {{"file", file},
                      {"error", error},
                      {"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch()).count()}};
  std::string path = (std::filesystem::path(db_dir_) / kMarkerName).string();
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string body = j.dump() + "\n";
  bool ok = ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) == 0) return;
  ::unlink(tmp.c_str());
}

std::string CorruptionLog::last_file() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_file_;
}

std::string CorruptionLog::last_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_error_;
}

void CorruptionLog::ClearMarker(const std::string& db_dir) {
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(db_dir) / kMarkerName, ec);
}

}  // namespace levee::storage
