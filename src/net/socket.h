// Blocking socket I/O with deadlines, for threads that talk to another
// server one request at a time: the replication links (each link is one
// thread; a stop request wakes it through an eventfd) and the CLI's client
// (net/resp_client.h).
//
// Threads: a Socket belongs to one thread; Shutdown and Waker::Signal may
// be called from any.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace levee::net {

// An eventfd: Signal() from any thread wakes a poll on fd().
class Waker {
 public:
  Waker();
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  int fd() const { return fd_; }
  void Signal();
  void Drain();

 private:
  int fd_;
};

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() { Close(); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Connects with a timeout; errors name host:port.
  static Status Connect(const std::string& host, int port, int timeout_ms, Socket* out);
  void Close();
  // Shuts the connection down from another thread (the owner's reads fail).
  void Shutdown();
  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }

  Status WriteAll(std::string_view data, int timeout_ms);
  // Reads what is there (at least one byte) into in(), waiting up to
  // timeout_ms; DeadlineExceeded-like IOError "timeout" when nothing came.
  // *woken is set when waker fired instead.
  Status ReadSome(int timeout_ms, Waker* waker, bool* woken);
  std::string& in() { return in_; }
  // A line ending in \r\n from in(), reading as needed.
  Status ReadLine(int timeout_ms, std::string* line);
  // Exactly n bytes from in(), reading as needed.
  Status ReadExact(size_t n, int timeout_ms, std::string* out);

 private:
  int fd_;
  std::string in_;
};

bool IsTimeout(const Status& st);

}  // namespace levee::net
