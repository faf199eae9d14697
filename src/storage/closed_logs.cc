#include "storage/closed_logs.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace levee::storage {

ClosedLogs::~ClosedLogs() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ClosedLogs::Closed(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  queue_.push_back(path);
  queued_++;
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  work_cv_.notify_one();
}

std::string ClosedLogs::WaitAll() {
  std::unique_lock<std::mutex> l(mu_);
  const uint64_t target = queued_;
  done_cv_.wait(l, [&] { return synced_ >= target; });
  return failure_;
}

std::string ClosedLogs::failure() const {
  std::lock_guard<std::mutex> l(mu_);
  return failure_;
}

void ClosedLogs::Run() {
  pthread_setname_np(pthread_self(), "leveldb-logsync");
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    work_cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued is synced
    std::string path = std::move(queue_.front());
    queue_.pop_front();
    l.unlock();
    std::string error;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) error = path + ": cannot open to sync: " + std::strerror(errno);
    } else {
      if (::fdatasync(fd) != 0) error = path + ": " + std::strerror(errno);
      ::close(fd);
    }
    l.lock();
    if (!error.empty() && failure_.empty()) failure_ = error;
    synced_++;
    done_cv_.notify_all();
  }
}

}  // namespace levee::storage
