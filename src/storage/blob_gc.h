// BlobCollector: reclaims the space of dead records in blob files.
//
// Overwrites and deletes leave a value's old record in its blob file. The
// collector keeps an estimate of each file's dead bytes (the writer and the
// key counter report superseded references; a file written before this
// start is first surveyed: every record checked against LevelDB). When a
// sealed file's dead share reaches garbage_ratio it copies the live records
// to the file being appended to — on the writer thread, between groups, so
// a record still referenced is moved atomically with its reference — syncs
// the new copies and the references, and removes the file once no iterator
// that could still read the old references is alive.
//
// Relocation changes only where a value is, never what it is: it is not
// logged, and replicas collect their own files.
//
// Threads: its own; Start/Stop and the setters from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/status.h"

namespace levee::storage {

class Engine;

struct BlobGcStats {
  std::atomic<uint64_t> files_removed{0};
  std::atomic<uint64_t> bytes_reclaimed{0};  // sizes of removed files
  std::atomic<uint64_t> bytes_relocated{0};  // live values copied forward
  std::atomic<uint64_t> surveys{0};
  std::atomic<uint64_t> errors{0};
};

class BlobCollector {
 public:
  using RunOnWriter = std::function<void(const std::function<void()>&)>;
  BlobCollector(Engine* engine, RunOnWriter run_on_writer);
  ~BlobCollector();
  void Start();
  // Stops the thread and saves the garbage estimates (BlobFiles::SaveEstimates),
  // which it also does every kSaveEvery while running.
  void Stop();
  static constexpr std::chrono::seconds kSaveEvery{60};

  // A sealed file is collected when at least this share of it is dead (0..1).
  void set_garbage_ratio(double r) { ratio_.store(r); }
  // Runs one pass now and returns when it is done (tests, DEBUG BLOB-GC).
  Status RunPass();
  const BlobGcStats& stats() const { return stats_; }

 private:
  void Run();
  Status Pass();
  bool stop_requested() {
    std::lock_guard<std::mutex> l(mu_);
    return stop_;
  }
  Status Survey(uint64_t file);
  void SaveEstimates();
  Status Collect(uint64_t file, uint64_t bytes);

  Engine* engine_;
  RunOnWriter run_on_writer_;
  std::atomic<double> ratio_{0.5};
  BlobGcStats stats_;
  std::mutex pass_mu_;  // one pass at a time
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace levee::storage
