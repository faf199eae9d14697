#include "storage/blob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <leveldb/env.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/coding.h"
#include "common/file.h"
#include "storage/counting_cache.h"

namespace levee::storage {
namespace fs = std::filesystem;
namespace {

constexpr size_t kHeader = 12;  // fixed32 crc, fixed32 key length, fixed32 value length
constexpr std::string_view kPrefix = "vlog-";
constexpr std::string_view kSuffix = ".blob";

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// A value cache entry: the key is kept so a lookup checks it as a read
// does; the value is buf[offset..offset+length of the ref].
struct CachedValue {
  std::string key, buf;
  size_t offset;
};
constexpr size_t kCacheEntryOverhead = sizeof(CachedValue) + 64;  // allocations and the LRU node

void DeleteCachedValue(const leveldb::Slice&, void* v) { delete static_cast<CachedValue*>(v); }

std::string CacheKey(const BlobRef& ref) {
  std::string k;
  PutFixed64(&k, ref.file);
  PutFixed64(&k, ref.offset);
  return k;
}

}  // namespace

std::string BlobFileName(uint64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "vlog-%06llu.blob", static_cast<unsigned long long>(number));
  return buf;
}

bool ParseBlobFileName(std::string_view name, uint64_t* number) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *number = n;
  return true;
}

uint32_t BlobFiles::RecordSize(size_t key_size, size_t value_size) {
  return static_cast<uint32_t>(kHeader + key_size + value_size);
}

BlobFiles::BlobFiles(std::string dir, leveldb::Env* env, uint64_t file_bytes, size_t cache_bytes)
    : dir_(std::move(dir)), env_(env), file_bytes_(file_bytes) {
  if (cache_bytes > 0) cache_ = std::make_unique<CountingCache>(cache_bytes);
  cache_capacity_ = cache_bytes;
}

BlobFiles::~BlobFiles() {
  if (active_fd_ >= 0) ::close(active_fd_);
  for (auto& [n, fd] : fds_) ::close(fd);
}

std::string BlobFiles::Path(uint64_t number) const { return (fs::path(dir_) / BlobFileName(number)).string(); }

Status BlobFiles::Open() {
  std::error_code ec;
  std::lock_guard<std::mutex> l(info_mu_);
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    uint64_t n;
    if (!ParseBlobFileName(e.path().filename().string(), &n)) continue;
    BlobFileInfo info;
    info.number = n;
    info.bytes = e.file_size(ec);
    info.surveyed = false;
    files_[n] = info;
    next_number_ = std::max(next_number_, n + 1);
  }
  if (ec) return Status::IOError("cannot list blob files in " + dir_ + ": " + ec.message());
  LoadEstimates();
  return Status::OK();
}

namespace {
constexpr std::string_view kEstimatesHeader = "levee-blob-garbage 1";
}  // namespace

void BlobFiles::LoadEstimates() {
  // Estimates only: a file that is missing, damaged or from another state
  // of the directory means surveys, as if there were none.
  std::ifstream in(fs::path(dir_) / kEstimatesFile);
  std::string line;
  if (!in || !std::getline(in, line) || line != kEstimatesHeader) return;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> saved;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint64_t number, bytes, garbage;
    if (!(fields >> number >> bytes >> garbage) || garbage > bytes) return;
    saved[number] = {bytes, garbage};
  }
  for (auto& [n, f] : files_) {
    auto it = saved.find(n);
    if (it == saved.end() || it->second.first != f.bytes) continue;
    f.garbage = it->second.second;
    f.surveyed = true;
  }
}

Status BlobFiles::SaveEstimates() const {
  std::string out(kEstimatesHeader);
  out += "\n";
  {
    std::lock_guard<std::mutex> l(info_mu_);
    for (const auto& [n, f] : files_) {
      if (f.active || !f.surveyed) continue;
      out += std::to_string(n) + " " + std::to_string(f.bytes) + " " + std::to_string(f.garbage) + "\n";
    }
  }
  return WriteFileAtomic((fs::path(dir_) / kEstimatesFile).string(), out);
}

Status BlobFiles::OpenNext() {
  if (active_fd_ >= 0) {
    if (unsynced_.exchange(false) && ::fdatasync(active_fd_) != 0) {
      unsynced_ = true;
      return Status::IOError(Errno("cannot sync blob file", Path(active_number_)));
    }
    ::close(active_fd_);
    active_fd_ = -1;
    std::lock_guard<std::mutex> l(info_mu_);
    files_[active_number_].active = false;
  }
  uint64_t n = next_number_++;
  std::string path = Path(n);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == ENOSPC) return Status::NoSpace(Errno("cannot create blob file", path));
    return Status::IOError(Errno("cannot create blob file", path));
  }
  // The new name must survive a crash before any reference to it does.
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    Status st = Status::IOError(Errno("cannot sync the directory of new blob file", path));
    if (dfd >= 0) ::close(dfd);
    ::close(fd);
    return st;
  }
  ::close(dfd);
  active_fd_ = fd;
  active_number_ = n;
  active_size_ = 0;
  std::lock_guard<std::mutex> l(info_mu_);
  BlobFileInfo info;
  info.number = n;
  info.active = true;
  files_[n] = info;
  return Status::OK();
}

void BlobFiles::CacheInsert(const BlobRef& ref, std::string_view key, std::string buffer,
                            size_t value_offset) const {
  if (!cache_) return;
  size_t charge = key.size() + buffer.capacity() + kCacheEntryOverhead;
  auto* v = new CachedValue{std::string(key), std::move(buffer), value_offset};
  cache_->Release(cache_->Insert(CacheKey(ref), v, charge, &DeleteCachedValue));
}

void BlobFiles::CacheErase(const BlobRef& ref) const {
  if (cache_) cache_->Erase(CacheKey(ref));
}

bool BlobFiles::CacheLookup(const BlobRef& ref, std::string_view key, std::string* value) const {
  if (!cache_) return false;
  leveldb::Cache::Handle* h = cache_->Lookup(CacheKey(ref));
  if (h == nullptr) return false;
  const auto* v = static_cast<const CachedValue*>(cache_->Value(h));
  bool match = v->key == key && v->buf.size() - v->offset == ref.length;
  if (match) value->assign(v->buf, v->offset, ref.length);
  cache_->Release(h);
  return match;  // a mismatch is read from the file, which reports it
}

StatusOr<BlobRef> BlobFiles::AppendCached(std::string_view key, std::string buffer, size_t value_offset) {
  auto ref = Append(key, std::string_view(buffer).substr(value_offset));
  if (ref.ok() && cache_on_write_.load(std::memory_order_relaxed)) {
    CacheInsert(ref.value(), key, std::move(buffer), value_offset);
  }
  return ref;
}

StatusOr<BlobRef> BlobFiles::Move(const BlobRef& from, std::string_view key, std::string value) {
  bool cached = false;
  if (cache_) {
    if (leveldb::Cache::Handle* h = cache_->LookupUncounted(CacheKey(from))) {
      cached = true;
      cache_->Release(h);
      cache_->Erase(CacheKey(from));
    }
  }
  auto ref = Append(key, value);
  if (cached && ref.ok()) CacheInsert(ref.value(), key, std::move(value), 0);  // whatever cache-on-write says
  return ref;
}

StatusOr<BlobRef> BlobFiles::Append(std::string_view key, std::string_view value) {
  if (active_fd_ < 0 || active_size_ >= file_bytes_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> l(active_mu_);
    LEVEE_RETURN_IF_ERROR(OpenNext());
  }
  // Header, key and value go out in one pwritev, without gathering them.
  std::string header;
  PutFixed32(&header, 0);  // the CRC, below
  PutFixed32(&header, static_cast<uint32_t>(key.size()));
  PutFixed32(&header, static_cast<uint32_t>(value.size()));
  uint32_t crc = Crc32Extend(Crc32Extend(Crc32(std::string_view(header).substr(4)), key), value);
  std::string crc_bytes;
  PutFixed32(&crc_bytes, crc);
  header.replace(0, 4, crc_bytes);
  const size_t total = header.size() + key.size() + value.size();
  std::string_view parts[3] = {header, key, value};
  size_t done = 0;
  while (done < total) {
    // The iovecs for what is still to write.
    iovec iov[3];
    int n = 0;
    size_t skip = done;
    for (auto part : parts) {
      if (skip >= part.size()) {
        skip -= part.size();
        continue;
      }
      iov[n].iov_base = const_cast<char*>(part.data() + skip);
      iov[n].iov_len = part.size() - skip;
      skip = 0;
      n++;
    }
    ssize_t w = ::pwritev(active_fd_, iov, n, static_cast<off_t>(active_size_ + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = errno;
      // Leave no partial record behind the next append.
      (void)::ftruncate(active_fd_, static_cast<off_t>(active_size_));
      errno = err;
      if (err == ENOSPC || err == EDQUOT) return Status::NoSpace(Errno("blob file full", Path(active_number_)));
      return Status::IOError(Errno("cannot write blob file", Path(active_number_)));
    }
    done += static_cast<size_t>(w);
  }
  BlobRef ref{active_number_, active_size_, static_cast<uint32_t>(value.size())};
  active_size_ += total;
  unsynced_.store(true, std::memory_order_release);
  std::lock_guard<std::mutex> l(info_mu_);
  files_[active_number_].bytes = active_size_;
  return ref;
}

Status BlobFiles::Sync() {
  std::lock_guard<std::mutex> l(active_mu_);
  if (active_fd_ < 0 || !unsynced_.exchange(false)) return Status::OK();
  if (::fdatasync(active_fd_) != 0) {
    unsynced_ = true;
    return Status::IOError(Errno("cannot sync blob file", Path(active_number_)));
  }
  return Status::OK();
}

Status BlobFiles::Read(const BlobRef& ref, std::string_view key, std::string* value, bool fill_cache) const {
  if (CacheLookup(ref, key, value)) return Status::OK();
  const size_t size = kHeader + key.size() + ref.length;
  std::string buf(size, '\0');
  ssize_t got = -1;
  int err = 0;
  {
    std::shared_lock<std::shared_mutex> l(fds_mu_);
    auto it = fds_.find(ref.file);
    if (it != fds_.end()) {
      got = ::pread(it->second, buf.data(), size, static_cast<off_t>(ref.offset));
      err = errno;
    }
  }
  if (got < 0 && err == 0) {
    std::unique_lock<std::shared_mutex> l(fds_mu_);
    auto it = fds_.find(ref.file);
    int fd = it != fds_.end() ? it->second : ::open(Path(ref.file).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound("blob file " + Path(ref.file) + " is gone");
      return Status::IOError(Errno("cannot open blob file", Path(ref.file)));
    }
    got = ::pread(fd, buf.data(), size, static_cast<off_t>(ref.offset));
    err = errno;
    if (it == fds_.end()) {
      if (removed_.count(ref.file)) ::close(fd);  // held by a checkpoint only: don't cache it
      else fds_[ref.file] = fd;
    }
  }
  if (got < 0) {
    errno = err;
    return Status::IOError(Errno("cannot read blob file", Path(ref.file)));
  }
  auto where = [&] { return Path(ref.file) + " at offset " + std::to_string(ref.offset); };
  if (static_cast<size_t>(got) < size) {
    return Status::Corruption("blob record in " + where() + " is cut short (the file ends at " +
                              std::to_string(ref.offset + static_cast<uint64_t>(got)) +
                              "): the value was lost; delete or rewrite the key, or restore a backup");
  }
  std::string_view v(buf);
  uint32_t crc = DecodeFixed32(v.data());
  uint32_t klen = DecodeFixed32(v.data() + 4), vlen = DecodeFixed32(v.data() + 8);
  if (klen != key.size() || vlen != ref.length || v.substr(kHeader, klen) != key ||
      crc != Crc32(v.substr(4))) {
    return Status::Corruption("blob record in " + where() +
                              " does not match its checksum or its key: the value is damaged; delete or rewrite "
                              "the key, or restore a backup (levee check lists every damaged value)");
  }
  value->assign(v.data() + kHeader + klen, vlen);
  if (fill_cache) CacheInsert(ref, key, std::move(buf), kHeader + klen);
  return Status::OK();
}

Status BlobFiles::ScanFile(uint64_t number,
                           const std::function<bool(uint64_t, std::string_view, std::string_view)>& fn,
                           uint64_t* torn_at) const {
  std::string path = Path(number);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("blob file " + path + " is gone");
    return Status::IOError(Errno("cannot open blob file", path));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IOError(Errno("cannot stat blob file", path));
  const uint64_t end = static_cast<uint64_t>(st.st_size);
  if (torn_at) *torn_at = end;
  // Read in large pieces; a record may straddle two.
  std::string buf;
  uint64_t buf_at = 0, off = 0;
  auto ensure = [&](uint64_t at, size_t n) -> bool {
    if (at >= buf_at && at + n <= buf_at + buf.size()) return true;
    size_t want = std::max<size_t>(n, 4 << 20);
    if (at + want > end) want = static_cast<size_t>(end - at);
    if (want < n) return false;
    buf.resize(want);
    size_t done = 0;
    while (done < want) {
      ssize_t r = ::pread(fd, buf.data() + done, want - done, static_cast<off_t>(at + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      done += static_cast<size_t>(r);
    }
    buf_at = at;
    return true;
  };
  while (off < end) {
    if (!ensure(off, kHeader)) break;
    const char* h = buf.data() + (off - buf_at);
    uint32_t crc = DecodeFixed32(h), klen = DecodeFixed32(h + 4), vlen = DecodeFixed32(h + 8);
    uint64_t rec = kHeader + static_cast<uint64_t>(klen) + vlen;
    if (off + rec > end || !ensure(off, static_cast<size_t>(rec))) break;
    std::string_view r(buf.data() + (off - buf_at), static_cast<size_t>(rec));
    if (Crc32(r.substr(4)) != crc) break;
    if (!fn(off, r.substr(kHeader, klen), r.substr(kHeader + klen, vlen))) return Status::OK();
    off += rec;
  }
  if (torn_at) *torn_at = off;
  return Status::OK();
}

void BlobFiles::AddGarbage(const BlobRef& ref) {
  CacheErase(ref);
  std::lock_guard<std::mutex> l(info_mu_);
  auto it = files_.find(ref.file);
  if (it == files_.end()) return;
  // The record's size, less the key (not known here; keys are small).
  it->second.garbage = std::min(it->second.bytes, it->second.garbage + kHeader + ref.length);
}

void BlobFiles::SetGarbage(uint64_t number, uint64_t garbage) {
  std::lock_guard<std::mutex> l(info_mu_);
  auto it = files_.find(number);
  if (it == files_.end()) return;
  it->second.garbage = std::min(it->second.bytes, garbage);
  it->second.surveyed = true;
}

void BlobFiles::MarkAllGarbage() {
  if (cache_) cache_->Prune();  // every cached value is dead: give the memory back now
  std::lock_guard<std::mutex> l(info_mu_);
  for (auto& [n, f] : files_) {
    f.garbage = f.bytes;
    f.surveyed = true;
  }
}

std::vector<BlobFileInfo> BlobFiles::Files() const {
  std::lock_guard<std::mutex> l(info_mu_);
  std::vector<BlobFileInfo> out;
  for (const auto& [n, f] : files_) out.push_back(f);
  return out;
}

BlobStats BlobFiles::Stats() const {
  std::lock_guard<std::mutex> l(info_mu_);
  BlobStats s;
  for (const auto& [n, f] : files_) {
    s.files++;
    s.bytes += f.bytes;
    s.garbage += f.garbage;
  }
  if (cache_) {
    s.cache_capacity = cache_capacity_;
    s.cache_bytes = cache_->TotalCharge();
    s.cache_hits = cache_->hits();
    s.cache_misses = cache_->misses();
  }
  return s;
}

Status BlobFiles::Remove(uint64_t number) {
  {
    std::lock_guard<std::mutex> l(info_mu_);
    auto it = files_.find(number);
    if (it != files_.end() && it->second.active) {
      return Status::InvalidArgument("blob file " + Path(number) + " is still being written");
    }
    files_.erase(number);
  }
  {
    std::unique_lock<std::shared_mutex> l(fds_mu_);
    auto it = fds_.find(number);
    if (it != fds_.end()) {
      ::close(it->second);
      fds_.erase(it);
    }
    removed_.insert(number);
  }
  std::string path = Path(number);
  leveldb::Status s = env_ != nullptr ? env_->RemoveFile(path) : leveldb::Env::Default()->RemoveFile(path);
  if (!s.ok()) return Status::IOError("cannot remove blob file " + path + ": " + s.ToString());
  return Status::OK();
}

}  // namespace levee::storage
