// Source: the files of one consistent checkpoint of a data directory, as a
// backup reads them.
//
// CheckpointLease is the local kind: taken at a write barrier (the writer
// runs nothing while it lists the files), it holds LevelDB's files against
// deletion (storage::DeferringEnv), hard-links levee's log segments so a
// trim can't remove them, records the applied sequence, and (optionally)
// computes DEBUG DIGEST over a LevelDB snapshot taken at the barrier in a
// thread of its own. The server lends leases to `levee backup create
// --server` over the BACKUP command (cli/remote_source.cc) and uses them for
// its scheduled backups; an offline backup takes one of a stopped data dir.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace levee::storage {
class Engine;
class Checkpoint;
}  // namespace levee::storage
namespace levee::wal {
class Log;
}

namespace levee::backup {

struct SourceFile {
  std::string path;        // in the data directory: "db/000005.ldb", "wal/00000000000000000001.log"
  uint64_t size = 0;       // bytes that belong to the checkpoint
  int64_t mtime_ns = 0;
  std::string local_path;  // where to read it now (relative to the data directory)
};

struct SourceInfo {
  std::string instance_id;
  uint64_t applied_sequence = 0;
  int64_t time_ms = 0;      // wall time at the barrier
  uint64_t barrier_us = 0;  // how long writes were held
  std::string data_dir;     // absolute
  std::vector<SourceFile> files;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual const SourceInfo& info() const = 0;
  // Thread-safe. Exactly n bytes at offset of path.
  virtual Status Read(const std::string& path, uint64_t offset, size_t n, std::string* out) = 0;
  // The digest at the barrier; waits for it. Empty when not computed.
  virtual StatusOr<std::string> Digest() = 0;
  // What to put in the manifest's "source".
  virtual std::string description() const = 0;
};

class CheckpointLease final : public Source {
 public:
  // run_on_writer runs a function on the writer thread between groups and
  // returns when it has (nullptr for a stopped data directory). With
  // digest, a thread reads every key at the barrier's snapshot, at most
  // digest_bytes_per_sec (0: unlimited).
  using RunOnWriter = std::function<void(const std::function<void()>&)>;
  static StatusOr<std::unique_ptr<CheckpointLease>> Take(storage::Engine* engine, wal::Log* log,
                                                         const std::string& data_dir, const std::string& instance_id,
                                                         const RunOnWriter& run_on_writer, bool digest,
                                                         uint64_t digest_bytes_per_sec, std::string description);
  ~CheckpointLease() override;

  const SourceInfo& info() const override { return info_; }
  Status Read(const std::string& path, uint64_t offset, size_t n, std::string* out) override;
  StatusOr<std::string> Digest() override;
  std::string description() const override { return description_; }
  // Non-blocking: whether the digest is done, and it (or its error).
  bool DigestReady(std::string* digest, Status* st);
  const std::string& id() const { return id_; }

 private:
  CheckpointLease() = default;
  std::string id_, description_, hold_dir_;
  SourceInfo info_;
  std::unique_ptr<storage::Checkpoint> checkpoint_;
  std::thread digest_thread_;
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool digest_done_ = true;
  std::string digest_;
  Status digest_status_;
};

// Removes hard links left by leases of a server that stopped (at start-up).
void RemoveStaleHolds(const std::string& data_dir);

}  // namespace levee::backup
