// ClosedLogs: makes LevelDB's closed log files durable, off LevelDB's
// writing thread.
//
// levee writes LevelDB without sync and trims its own write-ahead log after
// one synced LevelDB write, which syncs only the log LevelDB writes now.
// When a memtable fills, LevelDB starts a new log and lets go of the old one
// unsynced (Debian's LevelDB 1.23 does not even call Close() on it); until
// that memtable is flushed to a table, the old log's unsynced tail is
// LevelDB's only copy of those writes. A power cut could then keep the new
// log (with a higher applied sequence) and lose the tail after the trim had
// deleted levee's copy. The power-cut tests found it
// (tests/integration/test_power_loss.py).
//
// So each log LevelDB lets go of is queued here and fdatasynced by a thread
// of its own; the log trim calls WaitAll() first, which returns once every
// log let go of before the call is durable. A log already removed needs no
// sync (LevelDB removes a log only after its memtable's table and MANIFEST
// edit are synced). A failed sync is kept, not retried: the writer then
// refuses writes and stops trimming.
//
// Threads: Closed() from whichever thread LevelDB writes on; WaitAll() from
// the writer; the syncing thread is this class's own, started on first use
// and joined (after draining the queue) by the destructor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace levee::storage {

class ClosedLogs {
 public:
  ClosedLogs() = default;
  ~ClosedLogs();
  ClosedLogs(const ClosedLogs&) = delete;
  ClosedLogs& operator=(const ClosedLogs&) = delete;

  // LevelDB let go of the log at path: sync it soon.
  void Closed(const std::string& path);
  // Waits until every log queued before the call is synced. Returns the
  // first failure since start ("" if none).
  std::string WaitAll();
  std::string failure() const;

 private:
  void Run();

  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::string> queue_;
  uint64_t queued_ = 0, synced_ = 0;
  bool stop_ = false;
  std::string failure_;
  std::thread thread_;
};

}  // namespace levee::storage
