#include "storage/checkpoint.h"

#include <pthread.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "storage/blob.h"
#include "storage/corruption.h"

namespace levee::storage {
namespace fs = std::filesystem;

namespace {

struct BackgroundWork {
  void (*function)(void*);
  void* arg;
};

void RunNamed(void* p) {
  std::unique_ptr<BackgroundWork> work(static_cast<BackgroundWork*>(p));
  thread_local bool named = false;
  if (!named) {
    pthread_setname_np(pthread_self(), "leveldb-bg");
    named = true;
  }
  work->function(work->arg);
}

// A table file whose reads record, per thread, that it was read last.
class NamedTableFile final : public leveldb::RandomAccessFile {
 public:
  NamedTableFile(leveldb::RandomAccessFile* base, uint64_t number, bool sst)
      : base_(base), number_(number), sst_(sst) {}
  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result, char* scratch) const override {
    NoteTableRead(number_, sst_);
    return base_->Read(offset, n, result, scratch);
  }

 private:
  std::unique_ptr<leveldb::RandomAccessFile> base_;
  const uint64_t number_;
  const bool sst_;
};

// LevelDB's own log: when LevelDB lets go of it (Close(), or deleting it,
// which is all Debian's LevelDB 1.23 does at a memtable switch), it is
// queued to be made durable (storage/closed_logs.h).
class QueuedOnCloseFile final : public leveldb::WritableFile {
 public:
  QueuedOnCloseFile(leveldb::WritableFile* base, ClosedLogs* logs, std::string name)
      : base_(base), logs_(logs), name_(std::move(name)) {}
  ~QueuedOnCloseFile() override {
    base_.reset();  // flushes LevelDB's buffer into the file and closes it
    if (!closed_) logs_->Closed(name_);
  }
  leveldb::Status Append(const leveldb::Slice& data) override { return base_->Append(data); }
  leveldb::Status Flush() override { return base_->Flush(); }
  leveldb::Status Sync() override { return base_->Sync(); }
  leveldb::Status Close() override {
    leveldb::Status s = base_->Close();
    closed_ = true;
    logs_->Closed(name_);
    return s;
  }

 private:
  std::unique_ptr<leveldb::WritableFile> base_;
  ClosedLogs* const logs_;
  const std::string name_;
  bool closed_ = false;
};

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

leveldb::Status DeferringEnv::NewWritableFile(const std::string& f, leveldb::WritableFile** r) {
  leveldb::Status s = target()->NewWritableFile(f, r);
  if (s.ok() && EndsWith(fs::path(f).filename().string(), ".log")) *r = new QueuedOnCloseFile(*r, &closed_logs_, f);
  return s;
}

leveldb::Status DeferringEnv::NewRandomAccessFile(const std::string& f, leveldb::RandomAccessFile** r) {
  leveldb::Status s = target()->NewRandomAccessFile(f, r);
  if (!s.ok()) return s;
  std::string base = fs::path(f).filename().string();
  const bool ldb = base.size() > 4 && base.compare(base.size() - 4, 4, ".ldb") == 0;
  const bool sst = base.size() > 4 && base.compare(base.size() - 4, 4, ".sst") == 0;
  if (!ldb && !sst) return s;
  uint64_t number = 0;
  for (char c : base.substr(0, base.size() - 4)) {
    if (c < '0' || c > '9') return s;
    number = number * 10 + static_cast<uint64_t>(c - '0');
  }
  *r = new NamedTableFile(*r, number, sst);
  return s;
}

void DeferringEnv::Schedule(void (*function)(void*), void* arg) {
  target()->Schedule(RunNamed, new BackgroundWork{function, arg});
}

leveldb::Status DeferringEnv::RemoveFile(const std::string& f) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (hold_all_ > 0 || holds_.count(f)) {
      deferred_.insert(f);
      return leveldb::Status::OK();
    }
  }
  return target()->RemoveFile(f);
}

void DeferringEnv::HoldAll() {
  std::lock_guard<std::mutex> l(mu_);
  hold_all_++;
}

void DeferringEnv::ReleaseAll() {
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (--hold_all_ > 0) return;
    for (auto it = deferred_.begin(); it != deferred_.end();) {
      if (holds_.count(*it)) {
        ++it;
      } else {
        doomed.push_back(*it);
        it = deferred_.erase(it);
      }
    }
  }
  for (const auto& p : doomed) (void)target()->RemoveFile(p);
}

void DeferringEnv::Hold(const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& p : paths) holds_[p]++;
}

void DeferringEnv::Release(const std::vector<std::string>& paths) {
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& p : paths) {
      auto it = holds_.find(p);
      if (it == holds_.end()) continue;
      if (--it->second > 0) continue;
      holds_.erase(it);
      if (deferred_.erase(p)) doomed.push_back(p);
    }
  }
  for (const auto& p : doomed) (void)target()->RemoveFile(p);
}

size_t DeferringEnv::deferred() const {
  std::lock_guard<std::mutex> l(mu_);
  return deferred_.size();
}

bool IsCheckpointFile(const std::string& name) {
  auto ends = [&](const char* s) {
    std::string x(s);
    return name.size() > x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0;
  };
  uint64_t blob;
  return name == "CURRENT" || name.rfind("MANIFEST-", 0) == 0 || ends(".ldb") || ends(".sst") || ends(".log") ||
         ParseBlobFileName(name, &blob);
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Take(DeferringEnv* env, const std::string& dir) {
  std::unique_ptr<Checkpoint> cp(new Checkpoint(env, dir));
  // 1. Defer every removal, so nothing the MANIFEST names can vanish.
  // 2. Measure the MANIFEST: its prefix names the tables of one version
  //    (an edit is written only after its table file is complete).
  // 3. List and measure the rest: every table that prefix names exists now.
  //    Logs are measured after the MANIFEST, so they hold every write not
  //    yet in those tables (tables flushed since are unreferenced extras
  //    that LevelDB drops at open; the log still has their data). Blob
  //    files sort after the logs, so they are measured after them: a value
  //    is appended before the reference to it is written, so every
  //    reference in the measured logs points inside the measured blobs.
  // 4. Hold the listed files one by one and end the blanket deferral.
  env->HoldAll();
  struct Unhold {
    DeferringEnv* env;
    ~Unhold() { env->ReleaseAll(); }
  } unhold{env};
  std::string manifest;
  {
    std::ifstream current(fs::path(dir) / "CURRENT");
    if (!current || !std::getline(current, manifest) || manifest.empty()) {
      return Status::IOError("cannot read " + (fs::path(dir) / "CURRENT").string() + " for a checkpoint");
    }
  }
  struct stat st;
  std::string mpath = (fs::path(dir) / manifest).string();
  if (::stat(mpath.c_str(), &st) != 0) return Status::IOError("cannot stat " + mpath + " for a checkpoint");
  cp->files_.push_back(CheckpointFile{manifest, static_cast<uint64_t>(st.st_size)});
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (IsCheckpointFile(name) && name != manifest && name.rfind("MANIFEST-", 0) != 0) names.push_back(name);
  }
  if (ec) return Status::IOError("cannot list " + dir + " for a checkpoint: " + ec.message());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string p = (fs::path(dir) / n).string();
    if (::stat(p.c_str(), &st) != 0) continue;
    cp->files_.push_back(CheckpointFile{n, static_cast<uint64_t>(st.st_size)});
  }
  for (const auto& f : cp->files_) cp->held_.push_back((fs::path(dir) / f.name).string());
  env->Hold(cp->held_);
  return cp;
}

Checkpoint::~Checkpoint() { env_->Release(held_); }

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f.size;
  return n;
}

}  // namespace levee::storage
