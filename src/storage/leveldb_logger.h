// RecentLogger: LevelDB's info log, written to <db>/LOG as LevelDB would,
// with the last lines also kept in memory so a failed open can say which
// file LevelDB found damaged (its Status alone often does not).
#pragma once

#include <leveldb/env.h>

#include <cstdio>
#include <deque>
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

 private:
  std::FILE* file_;
  mutable std::mutex mu_;
  std::deque<std::string> recent_;
};

}  // namespace levee::storage
