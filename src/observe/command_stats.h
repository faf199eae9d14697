// Per-command statistics (INFO commandstats, levee_command_* metrics),
// error-reply counts by code (INFO errorstats) and the slow log (SLOWLOG).
//
// Hot path: one CommandCell per command, indexed by the command's id,
// updated with relaxed atomics; nothing is locked unless a command failed
// (errorstats) or was slow (slow log), both rare.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "observe/metrics.h"

namespace levee::observe {

struct CommandCell {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> usec{0};
  std::atomic<uint64_t> failed{0};    // ran and replied an error
  std::atomic<uint64_t> rejected{0};  // refused before running (arity, auth)
  Histogram latency{LatencyBounds()};
};

class CommandStats {
 public:
  explicit CommandStats(size_t commands);
  CommandCell& cell(size_t id) { return *cells_[id]; }
  const CommandCell& cell(size_t id) const { return *cells_[id]; }
  size_t size() const { return cells_.size(); }

  // Counts an error reply by its code: the first word ("ERR", "WRONGTYPE").
  void RecordError(std::string_view reply_text);
  std::map<std::string, uint64_t> Errors() const;
  uint64_t total_errors() const { return total_errors_.load(std::memory_order_relaxed); }
  void Reset();

 private:
  std::vector<std::unique_ptr<CommandCell>> cells_;
  mutable std::mutex mu_;  // guards errors_
  std::map<std::string, uint64_t> errors_;
  std::atomic<uint64_t> total_errors_{0};
};

class SlowLog {
 public:
  struct Entry {
    uint64_t id = 0;
    int64_t unix_time = 0;
    int64_t duration_us = 0;
    std::vector<std::string> args;  // at most 32, each at most 128 bytes, as Redis
    std::string client_addr, client_name;
  };

  // Adds an entry if duration_us reaches slowlog-log-slower-than (negative:
  // disabled; 0: every command).
  void MaybeAdd(int64_t duration_us, const std::vector<std::string>& args, const std::string& addr,
                const std::string& name);
  std::vector<Entry> Newest(size_t n) const;
  size_t size() const;
  void Reset();
  void set_slower_than_us(int64_t v) { slower_than_us_.store(v, std::memory_order_relaxed); }
  void set_max_len(size_t v);
  bool WouldLog(int64_t duration_us) const {
    int64_t t = slower_than_us_.load(std::memory_order_relaxed);
    return t >= 0 && duration_us >= t;
  }

 private:
  std::atomic<int64_t> slower_than_us_{10000};
  mutable std::mutex mu_;  // guards entries_, max_len_, next_id_
  std::deque<Entry> entries_;  // newest first
  size_t max_len_ = 128;
  uint64_t next_id_ = 0;
};

}  // namespace levee::observe
