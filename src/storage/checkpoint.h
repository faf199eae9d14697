// Checkpoints: a consistent set of LevelDB's files, held while they are
// copied (full resync of a replica now, backups later).
//
// LevelDB's table files never change once written, and its MANIFEST and log
// only grow. So a checkpoint is a list of the files in the database
// directory with their sizes at one moment: copying each table file whole
// and each MANIFEST/log file up to its recorded size gives a database that
// opens as LevelDB was at that moment. Every batch levee writes carries the
// applied log sequence (storage/engine.h), so whatever prefix of LevelDB's
// log the copy holds is self-describing: the copy's applied sequence says
// where the write-ahead log continues.
//
// Compaction deletes table files at any time. DeferringEnv wraps LevelDB's
// Env and postpones removing a file while a checkpoint holds it; the last
// release removes it.
//
// Threads: all of it is thread-safe.
#pragma once

#include <leveldb/env.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/closed_logs.h"

namespace levee::storage {

// levee's leveldb::Env: the default one, with file removals that a
// checkpoint can defer, and LevelDB's background thread (flushes and
// compactions) named "leveldb-bg" for top -H and profilers; otherwise it
// keeps the name of whichever levee thread first scheduled work. Table
// files are opened through a wrapper whose reads record the file per thread
// (storage/corruption.h), so damage LevelDB finds can be named by file.
// LevelDB's log files are made durable once LevelDB lets go of them
// (storage/closed_logs.h).
class DeferringEnv final : public leveldb::EnvWrapper {
 public:
  DeferringEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}
  leveldb::Status RemoveFile(const std::string& f) override;
  void Schedule(void (*function)(void*), void* arg) override;
  leveldb::Status NewRandomAccessFile(const std::string& f, leveldb::RandomAccessFile** r) override;
  // LevelDB's log files (NNNNNN.log) are queued in closed_logs() when
  // LevelDB lets go of them.
  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override;
  ClosedLogs& closed_logs() { return closed_logs_; }
  // Old name of RemoveFile; LevelDB 1.23 calls RemoveFile, older ones this.
  leveldb::Status DeleteFile(const std::string& f) override { return RemoveFile(f); }

  // While a HoldAll is in force every removal is deferred.
  void HoldAll();
  void ReleaseAll();
  void Hold(const std::vector<std::string>& paths);
  void Release(const std::vector<std::string>& paths);
  size_t deferred() const;

 private:
  mutable std::mutex mu_;
  int hold_all_ = 0;
  std::map<std::string, int> holds_;    // path -> checkpoints holding it
  std::set<std::string> deferred_;      // removal asked while held
  ClosedLogs closed_logs_;  // destroyed (its thread joined) before the base Env's users go
};

struct CheckpointFile {
  std::string name;   // inside the database directory
  uint64_t size = 0;  // bytes that belong to the checkpoint
};

class Checkpoint {
 public:
  // Lists dir's LevelDB files (CURRENT, MANIFEST-*, *.ldb, *.sst, *.log) and
  // holds them in env until the Checkpoint is destroyed.
  static StatusOr<std::unique_ptr<Checkpoint>> Take(DeferringEnv* env, const std::string& dir);
  ~Checkpoint();
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::string& dir() const { return dir_; }
  const std::vector<CheckpointFile>& files() const { return files_; }
  uint64_t total_bytes() const;

 private:
  Checkpoint(DeferringEnv* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  DeferringEnv* env_;
  std::string dir_;
  std::vector<CheckpointFile> files_;
  std::vector<std::string> held_;
};

// Whether name is one of LevelDB's own files that a checkpoint copies.
bool IsCheckpointFile(const std::string& name);

}  // namespace levee::storage
