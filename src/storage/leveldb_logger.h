// RecentLogger: LevelDB's info log, written to <db>/LOG as LevelDB would,
// with the last lines also kept in memory so a failed open can say which
// file LevelDB found damaged (its Status alone often does not).
#pragma once

#include <leveldb/env.h>

#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace levee::storage {

class RecentLogger final : public leveldb::Logger {
 public:
  explicit RecentLogger(const std::string& path);
  ~RecentLogger() override;
  void Logv(const char* format, std::va_list ap) override;
  std::vector<std::string> Recent() const;
  // Called (on the logging thread) for each line that reports a corruption.
  void set_on_corruption(std::function<void(const std::string&)> fn) {
    std::lock_guard<std::mutex> l(mu_);
    on_corruption_ = std::move(fn);
  }

 private:
  std::FILE* file_;
  mutable std::mutex mu_;
  std::deque<std::string> recent_;
  std::function<void(const std::string&)> on_corruption_;  // guarded by mu_
};

}  // namespace levee::storage
