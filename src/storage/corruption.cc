#include "storage/corruption.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/logging.h"

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

Status CorruptionLog::Note(const leveldb::Status& s, std::string_view what, bool point_read) {
  if (s.ok()) return Status::OK();
  std::string text = s.ToString();
  if (!s.IsCorruption()) {
    std::string msg = std::string(what) + ": " + text;
    if (s.IsNotFound()) return Status::NotFound(msg);
    if (text.find("No space left") != std::string::npos) return Status::NoSpace(msg);
    return Status::IOError(msg);
  }
  std::string file;
  if (point_read && text.find(".ldb") == std::string::npos && text.find(".sst") == std::string::npos &&
      text.find(".log") == std::string::npos && text.find("MANIFEST") == std::string::npos) {
    std::string table = LastTableRead();
    if (!table.empty()) file = "db/" + table;
  }
  Record(file, text);
  return Status::Corruption(std::string(what) + ": " + text + (file.empty() ? "" : " in " + file) +
                            "; the database is damaged: `levee check` names every damaged file, and "
                            "docs/runbooks/storage.md says what to do");
}

void CorruptionLog::NoteBackground(const std::string& line) { Record("", line); }

void CorruptionLog::Record(const std::string& file, const std::string& error) {
  count_++;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!file.empty() || last_file_.empty()) last_file_ = file;
    last_error_ = error;
  }
  static logging::RateLimit limit(10);
  uint64_t suppressed = 0;
  if (limit.Allow(&suppressed)) {
    logging::Error("storage", "LevelDB found damaged data" + (file.empty() ? std::string() : " in " + file),
                   {{"file", file}, {"error", error}, {"count", count_.load()}, {"suppressed_since_last", suppressed}});
  }
  if (marked_.exchange(true)) return;
  // Written once per run, atomically: temporary file, fsync, rename.
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
