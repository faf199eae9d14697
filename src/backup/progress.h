// Progress of a long backup operation: a bar with bytes, rate and ETA on a
// terminal (stderr), one JSON object per line with --json (stdout, restic's
// conventions: message_type "status" while running, "summary" at the end),
// or nothing. Server-side runs read the counters for metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace levee::backup {

class Progress {
 public:
  enum class Mode { kQuiet, kTerminal, kJson };
  Progress(Mode mode, std::string action) : mode_(mode), action_(std::move(action)) {}

  // Total work in bytes (and files) once known.
  void SetTotal(uint64_t bytes, uint64_t files);
  // Adds done work; prints at most every 200 ms (terminal) or 1 s (JSON).
  void Add(uint64_t bytes, uint64_t files = 0);
  // Prints the last status line and, with --json, the summary object.
  void Finish(const nlohmann::json& summary);

  uint64_t total_bytes() const { return total_bytes_.load(); }
  uint64_t done_bytes() const { return done_bytes_.load(); }
  double elapsed_s() const;

  // "12.5 MiB"
  static std::string Bytes(double n);

 private:
  void Print(bool final);
  const Mode mode_;
  const std::string action_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<uint64_t> total_bytes_{0}, total_files_{0}, done_bytes_{0}, done_files_{0};
  std::mutex mu_;
  double last_print_s_ = -1;
};

}  // namespace levee::backup
