#include "backup/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backup/names.h"
#include "common/file.h"

#include "backup/s3.h"

namespace levee::backup {
namespace fs = std::filesystem;

void RateLimiter::Take(uint64_t bytes) {
  if (rate_ == 0 || bytes == 0) return;
  double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  double wait;
  {
    std::lock_guard<std::mutex> l(mu_);
    // A burst of up to 100 ms of budget is allowed after an idle period.
    next_free_s_ = std::max(next_free_s_, now - 0.1);
    next_free_s_ += static_cast<double>(bytes) / static_cast<double>(rate_);
    wait = next_free_s_ - now;
  }
  if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
}

Status Store::Put(const std::string& key, std::string_view data) {
  LEVEE_RETURN_IF_ERROR(CheckStoreKey(key, url()));
  return DoPut(key, data);
}

Status Store::Get(const std::string& key, std::string* data) {
  LEVEE_RETURN_IF_ERROR(CheckStoreKey(key, url()));
  return DoGet(key, data);
}

StatusOr<bool> Store::Exists(const std::string& key, uint64_t* size) {
  LEVEE_RETURN_IF_ERROR(CheckStoreKey(key, url()));
  return DoExists(key, size);
}

Status Store::List(const std::string& prefix, std::vector<StoreEntry>* out) {
  if (!prefix.empty()) {
    if (prefix.back() != '/') return Status::InvalidArgument("repository " + url() + ": list prefix '" + prefix + "' must end in '/'");
    LEVEE_RETURN_IF_ERROR(CheckStoreKey(std::string_view(prefix).substr(0, prefix.size() - 1), url()));
  }
  return DoList(prefix, out);
}

Status Store::Delete(const std::string& key) {
  LEVEE_RETURN_IF_ERROR(CheckStoreKey(key, url()));
  return DoDelete(key);
}

namespace {

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOSPC || err == EDQUOT) return Status::NoSpace(what + ": no space left on the device");
  return Status::IOError(what + ": " + std::strerror(err));
}

// A directory tree: key "objects/ab/x" is file root/objects/ab/x. Put
// writes a temporary file, fsyncs it and renames it into place.
class FileStore final : public Store {
 public:
  FileStore(std::string url, std::string root, bool direct)
      : url_(std::move(url)), root_(std::move(root)), direct_(direct) {}
  const std::string& url() const override { return url_; }

  Status DoPut(const std::string& key, std::string_view data) override {
    fs::path p = fs::path(root_) / key;
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    if (ec) return Status::IOError("repository " + url_ + ": cannot create " + p.parent_path().string() + ": " + ec.message());
    std::string tmp = p.string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                      std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
    // Objects are written around the page cache; the small keys written
    // last (manifests, config, locks) through it. Through the page cache, a
    // backup of a large data set would fill the server's memory with pages
    // nobody reads again (evicting the database's own) and leave gigabytes
    // of dirty pages for one long writeback that stalls the server's log
    // syncs.
    bool object = key.rfind("objects/", 0) == 0;
    int fd = OpenForWrite(tmp, object && direct_);
    if (fd < 0) return ErrnoStatus("repository " + url_ + ": cannot create " + tmp, errno);
    int err = WriteMaybeDirect(fd, data, 0);
    if (err == 0 && ::ftruncate(fd, static_cast<off_t>(data.size())) != 0) err = errno;
    // Objects are made durable together by Flush (one syncfs); the small
    // keys each on their own.
    if (err == 0 && !object && ::fdatasync(fd) != 0) err = errno;
    ::close(fd);
    if (err == 0 && ::rename(tmp.c_str(), p.c_str()) != 0) err = errno;
    if (err != 0) {
      ::unlink(tmp.c_str());
      return ErrnoStatus("repository " + url_ + ": cannot write " + p.string(), err);
    }
    if (!object) {
      // The rename is durable once the directory is synced; a failure is
      // reported (a manifest must not look stored when it may not be).
      int dfd = ::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0 || ::fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0) ::close(dfd);
        return ErrnoStatus("repository " + url_ + ": cannot sync " + p.parent_path().string() + " after writing " + key, e);
      }
      ::close(dfd);
    }
    sent_ += data.size();
    return Status::OK();
  }

  Status Flush() override {
    int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("repository " + url_ + ": cannot open " + root_, errno);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus("repository " + url_ + ": cannot sync " + root_, err);
    return Status::OK();
  }

  Status DoGet(const std::string& key, std::string* data) override {
    fs::path p = fs::path(root_) / key;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound("repository " + url_ + ": " + key + " does not exist");
      return ErrnoStatus("repository " + url_ + ": cannot open " + p.string(), errno);
    }
    struct stat st;
    ::fstat(fd, &st);
    data->resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < data->size()) {
      ssize_t n = ::pread(fd, data->data() + done, data->size() - done, static_cast<off_t>(done));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        int err = n < 0 ? errno : EIO;
        ::close(fd);
        return ErrnoStatus("repository " + url_ + ": cannot read " + p.string(), err);
      }
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    received_ += data->size();
    return Status::OK();
  }

  StatusOr<bool> DoExists(const std::string& key, uint64_t* size) override {
    struct stat st;
    fs::path p = fs::path(root_) / key;
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) return false;
      return ErrnoStatus("repository " + url_ + ": cannot stat " + p.string(), errno);
    }
    if (size) *size = static_cast<uint64_t>(st.st_size);
    return true;
  }

  Status DoList(const std::string& prefix, std::vector<StoreEntry>* out) override {
    // prefix is a directory here ("objects/", "backups/", "locks/").
    fs::path dir = fs::path(root_) / prefix;
    std::error_code ec;
    if (!fs::exists(dir, ec)) return Status::OK();
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string rel = fs::relative(it->path(), root_, ec).string();
      if (rel.find(".tmp-") != std::string::npos) continue;  // a Put in progress or killed
      out->push_back(StoreEntry{rel, static_cast<uint64_t>(it->file_size(ec))});
    }
    if (ec) return Status::IOError("repository " + url_ + ": cannot list " + dir.string() + ": " + ec.message());
    return Status::OK();
  }

  Status DoDelete(const std::string& key) override {
    fs::path p = fs::path(root_) / key;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("repository " + url_ + ": cannot delete " + p.string(), errno);
    return Status::OK();
  }

 private:
  const std::string url_, root_;
  const bool direct_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  if (url.rfind("file://", 0) == 0) {
    std::string path = url.substr(7);
    if (path.empty() || path[0] != '/') {
      return Status::InvalidArgument("backup repository " + url + ": a file URL needs an absolute path (file:///path)");
    }
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec) return Status::IOError("backup repository " + url + ": cannot create " + path + ": " + ec.message());
    return std::unique_ptr<Store>(std::make_unique<FileStore>(url, path, options.direct_io));
  }
  if (url.rfind("s3://", 0) == 0 || url.rfind("gs://", 0) == 0) return OpenS3Store(url, options);
  return Status::InvalidArgument("backup repository '" + url +
                                 "' is not a URL levee knows: use file:///path, s3://bucket/prefix or gs://bucket/prefix");
}

}  // namespace levee::backup
