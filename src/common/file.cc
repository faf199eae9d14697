#include "common/file.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <algorithm>

namespace levee {

int WriteAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

namespace {
int WriteAllAt(int fd, std::string_view data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}
}  // namespace

int OpenForWrite(const std::string& path, bool direct) {
  int fd = direct ? ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644) : -1;
  if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  return fd;
}

int WriteMaybeDirect(int fd, std::string_view data, uint64_t offset) {
  if ((::fcntl(fd, F_GETFL) & O_DIRECT) == 0) return WriteAllAt(fd, data, offset);
  constexpr size_t kAlign = 4096, kBuffer = 4 << 20;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<char, Free> buffer;
  if (!buffer) {
    void* p = nullptr;
    if (::posix_memalign(&p, kAlign, kBuffer) != 0) return ENOMEM;
    buffer.reset(static_cast<char*>(p));
  }
  for (size_t done = 0; done < data.size();) {
    size_t n = std::min(kBuffer, data.size() - done);
    size_t padded = (n + kAlign - 1) / kAlign * kAlign;
    std::memcpy(buffer.get(), data.data() + done, n);
    std::memset(buffer.get() + n, 0, padded - n);
    ssize_t w = ::pwrite(fd, buffer.get(), padded, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL) {
      // Direct I/O refused (some file systems accept the open flag only).
      if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_DIRECT) != 0) return errno;
      return WriteAllAt(fd, data.substr(done), offset + done);
    }
    if (w < 0) return errno;
    if (static_cast<size_t>(w) != padded) {
      // A short write: a full file system is the usual cause; say so when
      // the space left confirms it.
      struct statfs sf;
      if (::fstatfs(fd, &sf) == 0 && static_cast<uint64_t>(sf.f_bavail) * sf.f_bsize < padded - w) return ENOSPC;
      return EIO;
    }
    done += n;
  }
  return 0;
}

Status WriteFileAtomic(const std::string& path, const std::string& content, unsigned mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::IOError("cannot write " + path + " (creating " + tmp + "): " + std::strerror(errno));
  int err = WriteAll(fd, content);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return Status::IOError("cannot write " + path + ": " + std::strerror(err));
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  // The rename is durable only once its directory is synced; a failed sync
  // is reported, not retried (what it was to make durable may be lost).
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::IOError("cannot open " + dir + " to sync " + path + ": " + std::strerror(errno));
  int rc = ::fsync(dfd);
  int e = errno;
  ::close(dfd);
  if (rc != 0) return Status::IOError("cannot sync directory " + dir + " after writing " + path + ": " + std::strerror(e));
  return Status::OK();
}

Status ReadFileAt(const std::string& path, uint64_t offset, size_t n, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  out->resize(n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out->data() + done, n - done, static_cast<off_t>(offset + done));
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      std::string why = r < 0 ? std::strerror(errno) : "file ended early";
      ::close(fd);
      return Status::IOError("cannot read " + path + ": " + why);
    }
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  return Status::OK();
}

}  // namespace levee
