#include "storage/leveldb_logger.h"

#include <cstdarg>

namespace levee::storage {

RecentLogger::RecentLogger(const std::string& path) : file_(std::fopen(path.c_str(), "a")) {}

RecentLogger::~RecentLogger() {
  if (file_) std::fclose(file_);
}

void RecentLogger::Logv(const char* format, std::va_list ap) {
  char buf[1024];
  std::va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(buf, sizeof(buf), format, copy);
  va_end(copy);
  std::string line(buf, n < 0 ? 0 : std::min<size_t>(n, sizeof(buf) - 1));
  std::function<void(const std::string&)> on_corruption;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (line.find("Corruption") != std::string::npos) on_corruption = on_corruption_;
  }
  if (on_corruption) on_corruption(line);
  std::lock_guard<std::mutex> l(mu_);
  if (file_) {
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  }
  recent_.push_back(std::move(line));
  if (recent_.size() > 64) recent_.pop_front();
}

std::vector<std::string> RecentLogger::Recent() const {
  std::lock_guard<std::mutex> l(mu_);
  return {recent_.begin(), recent_.end()};
}

}  // namespace levee::storage
