#include "net/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace levee::net {
namespace {

constexpr const char* kTimeout = "timed out";

int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool IsTimeout(const Status& st) { return st.code() == Status::Code::kIOError && st.message() == kTimeout; }

Waker::Waker() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
Waker::~Waker() {
  if (fd_ >= 0) ::close(fd_);
}
void Waker::Signal() {
  uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof(one));
}
void Waker::Drain() {
  uint64_t v;
  (void)!::read(fd_, &v, sizeof(v));
}

void Socket::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
}

void Socket::Shutdown() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Status Socket::Connect(const std::string& host, int port, int timeout_ms, Socket* out) {
  out->Close();
  std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return Status::IOError("cannot resolve " + where + ": " + gai_strerror(rc));
  Status last = Status::IOError("cannot connect to " + where);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, timeout_ms);
      if (rc == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        errno = rc == 0 ? ETIMEDOUT : errno;
        if (errno == 0) errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      out->fd_ = fd;
      ::freeaddrinfo(res);
      return Status::OK();
    }
    last = Status::IOError("cannot connect to " + where + ": " + std::strerror(errno));
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return last;
}

Status Socket::WriteAll(std::string_view data, int timeout_ms) {
  int64_t deadline = MonoMs() + timeout_ms;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int64_t left = deadline - MonoMs();
      if (left <= 0) return Status::IOError(kTimeout);
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      continue;
    }
    return Status::IOError(std::string("send: ") + std::strerror(errno));
  }
  return Status::OK();
}

Status Socket::ReadSome(int timeout_ms, Waker* waker, bool* woken) {
  if (woken) *woken = false;
  pollfd p[2] = {{fd_, POLLIN, 0}, {waker ? waker->fd() : -1, POLLIN, 0}};
  int rc = ::poll(p, waker ? 2 : 1, timeout_ms);
  if (rc < 0 && errno != EINTR) return Status::IOError(std::string("poll: ") + std::strerror(errno));
  if (waker && (p[1].revents & POLLIN)) {
    waker->Drain();
    if (woken) *woken = true;
  }
  if (rc <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
    if (woken && *woken) return Status::OK();
    return Status::IOError(kTimeout);
  }
  char buf[256 * 1024];
  ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
  if (n > 0) {
    in_.append(buf, static_cast<size_t>(n));
    return Status::OK();
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Status::OK();
  if (n == 0) return Status::IOError("connection closed by peer");
  return Status::IOError(std::string("recv: ") + std::strerror(errno));
}

Status Socket::ReadLine(int timeout_ms, std::string* line) {
  int64_t deadline = MonoMs() + timeout_ms;
  while (true) {
    size_t eol = in_.find("\r\n");
    if (eol != std::string::npos) {
      line->assign(in_, 0, eol);
      in_.erase(0, eol + 2);
      return Status::OK();
    }
    if (in_.size() > 1 << 20) return Status::Corruption("reply line longer than 1 MiB");
    int64_t left = deadline - MonoMs();
    if (left <= 0) return Status::IOError(kTimeout);
    LEVEE_RETURN_IF_ERROR(ReadSome(static_cast<int>(left), nullptr, nullptr));
  }
}

Status Socket::ReadExact(size_t n, int timeout_ms, std::string* out) {
  int64_t deadline = MonoMs() + timeout_ms;
  while (in_.size() < n) {
    int64_t left = deadline - MonoMs();
    if (left <= 0) return Status::IOError(kTimeout);
    LEVEE_RETURN_IF_ERROR(ReadSome(static_cast<int>(left), nullptr, nullptr));
  }
  out->assign(in_, 0, n);
  in_.erase(0, n);
  return Status::OK();
}

}  // namespace levee::net
