#include "wal/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/coding.h"

namespace levee::wal {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'L', 'E', 'V', 'E', 'E', 'W', 'A', 'L'};
constexpr uint32_t kSegmentVersion = 1;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

Status ErrnoStatus(const std::string& what) {
  int e = errno;
  std::string msg = what + ": " + std::strerror(e);
  if (e == ENOSPC || e == EDQUOT) return Status::NoSpace(msg);
  return Status::IOError(msg);
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoStatus("open directory " + dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync directory " + dir);
  return Status::OK();
}

bool ParseSegmentName(const std::string& name, uint64_t* first) {
  if (name.size() != 24 || name.substr(20) != ".wal") return false;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  *first = std::stoull(name.substr(0, 20));
  return true;
}

}  // namespace

std::string SegmentFileName(uint64_t first_sequence) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64 ".wal", first_sequence);
  return buf;
}

struct Log::File {
  int fd = -1;
  uint64_t size = 0;
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

Status ScanSegment(const std::string& path, uint64_t after, bool allow_torn_tail,
                   const std::function<bool(Record&&)>& fn, ScanResult* result) {
  *result = ScanResult();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(Errno("cannot read log segment " + path));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ScanSegmentBytes(data, path, after, allow_torn_tail, fn, result);
}

std::string SegmentHeader(uint64_t first_sequence) {
  std::string header(kMagic, 8);
  PutFixed32(&header, kSegmentVersion);
  PutFixed64(&header, first_sequence);
  return header;
}

Status ScanSegmentBytes(std::string_view data, const std::string& path, uint64_t after, bool allow_torn_tail,
                        const std::function<bool(Record&&)>& fn, ScanResult* result) {
  *result = ScanResult();
  if (data.size() < kSegmentHeaderSize) {
    if (allow_torn_tail) {  // crashed while creating it
      result->torn_tail = true;
      result->torn_detail = "segment header incomplete";
      return Status::OK();
    }
    return Status::Corruption("log segment " + path + " is shorter than its header");
  }
  if (std::memcmp(data.data(), kMagic, 8) != 0) {
    return Status::Corruption("log segment " + path + " does not start with LEVEEWAL: not a levee log file");
  }
  uint32_t version = DecodeFixed32(data.data() + 8);
  if (version != kSegmentVersion) {
    return Status::Corruption("log segment " + path + " has format version " + std::to_string(version) +
                              ", this levee reads version " + std::to_string(kSegmentVersion));
  }
  uint64_t first = DecodeFixed64(data.data() + 12);
  uint64_t expect = first;
  size_t pos = kSegmentHeaderSize;
  result->good_bytes = pos;
  result->last_sequence = first - 1;
  bool stop = false;
  while (pos < data.size()) {
    std::string where = "log segment " + path + " at offset " + std::to_string(pos);
    size_t left = data.size() - pos;
    auto torn = [&](const std::string& why) -> Status {
      if (!allow_torn_tail) return Status::Corruption(where + ": " + why + " (damaged record at the end)");
      result->torn_tail = true;
      result->torn_detail = why + " at offset " + std::to_string(pos);
      return Status::OK();
    };
    if (left < kFrameHeaderSize) return torn("incomplete record header");
    uint32_t len = DecodeFixed32(data.data() + pos);
    uint32_t crc = DecodeFixed32(data.data() + pos + 4);
    if (len > left - kFrameHeaderSize) return torn("incomplete record");
    std::string_view payload(data.data() + pos + kFrameHeaderSize, len);
    bool last = pos + kFrameHeaderSize + len == data.size();
    if (Crc32(payload) != crc) {
      if (last) return torn("checksum mismatch in the final record");
      return Status::Corruption(where + ": checksum mismatch in a record followed by more records; "
                                "the log is damaged in the middle (restore from a backup)");
    }
    Record rec;
    if (!DecodePayload(payload, &rec)) {
      return Status::Corruption(where + ": record passes its checksum but cannot be decoded");
    }
    if (rec.sequence != expect) {
      return Status::Corruption(where + ": record has sequence " + std::to_string(rec.sequence) +
                                ", expected " + std::to_string(expect));
    }
    expect++;
    pos += kFrameHeaderSize + len;
    result->good_bytes = pos;
    result->last_sequence = rec.sequence;
    result->records++;
    if (!stop && fn && rec.sequence > after && !fn(std::move(rec))) stop = true;
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<Log>> Log::Open(const LogOptions& options, std::vector<std::string>* warnings) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Status::IOError("cannot create log directory " + options.dir + ": " + ec.message());
  std::unique_ptr<Log> log(new Log(options));
  std::vector<uint64_t> firsts;
  for (const auto& entry : fs::directory_iterator(options.dir, ec)) {
    uint64_t first;
    if (ParseSegmentName(entry.path().filename().string(), &first)) firsts.push_back(first);
  }
  if (ec) return Status::IOError("cannot list log directory " + options.dir + ": " + ec.message());
  std::sort(firsts.begin(), firsts.end());
  uint64_t prev_last = 0;
  for (size_t i = 0; i < firsts.size(); i++) {
    bool is_last = i + 1 == firsts.size();
    std::string path = (fs::path(options.dir) / SegmentFileName(firsts[i])).string();
    ScanResult r;
    LEVEE_RETURN_IF_ERROR(ScanSegment(path, UINT64_MAX, is_last, nullptr, &r));
    if (i > 0 && firsts[i] != prev_last + 1) {
      return Status::Corruption("log segment " + path + " starts at sequence " + std::to_string(firsts[i]) +
                                " but the previous segment ends at " + std::to_string(prev_last) +
                                ": a segment is missing");
    }
    if (r.torn_tail) {
      if (r.good_bytes < kSegmentHeaderSize) {
        fs::remove(path, ec);
        warnings->push_back("removed log segment " + path + " with an incomplete header (torn at creation)");
        continue;
      }
      if (::truncate(path.c_str(), static_cast<off_t>(r.good_bytes)) != 0) {
        return ErrnoStatus("cannot cut the torn tail off " + path);
      }
      warnings->push_back("log segment " + path + ": " + r.torn_detail +
                          "; ignored it (a write that was never acknowledged) and cut the file to " +
                          std::to_string(r.good_bytes) + " bytes");
    }
    log->segments_.push_back(SegmentInfo{firsts[i], r.last_sequence, r.good_bytes, path});
    prev_last = r.last_sequence;
  }
  if (!log->segments_.empty()) {
    log->last_sequence_ = log->segments_.back().last_sequence;
    const SegmentInfo& last = log->segments_.back();
    auto f = std::make_shared<File>();
    f->fd = ::open(last.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (f->fd < 0) return ErrnoStatus("cannot open log segment " + last.path);
    f->size = last.bytes;
    if (::lseek(f->fd, static_cast<off_t>(f->size), SEEK_SET) < 0) return ErrnoStatus("seek " + last.path);
    log->current_ = f;
  }
  return log;
}

Log::~Log() = default;

uint64_t Log::first_sequence() const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& s : segments_) {
    if (s.last_sequence >= s.first_sequence) return s.first_sequence;
  }
  return 0;
}

Status Log::OpenSegmentForAppend(uint64_t first_sequence) {
  std::string path = (fs::path(options_.dir) / SegmentFileName(first_sequence)).string();
  auto f = std::make_shared<File>();
  f->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) return ErrnoStatus("cannot create log segment " + path);
  std::string header = SegmentHeader(first_sequence);
  if (::write(f->fd, header.data(), header.size()) != static_cast<ssize_t>(header.size()) ||
      ::fdatasync(f->fd) != 0) {
    Status st = ErrnoStatus("cannot write header of log segment " + path);
    ::unlink(path.c_str());
    return st;
  }
  LEVEE_RETURN_IF_ERROR(SyncDir(options_.dir));
  f->size = header.size();
  std::lock_guard<std::mutex> l(mu_);
  segments_.push_back(SegmentInfo{first_sequence, first_sequence - 1, f->size, path});
  current_ = f;
  return Status::OK();
}

Status Log::Append(std::string_view framed, uint64_t first, uint64_t last) {
  uint64_t prev = last_sequence();
  if ((prev != 0 && first != prev + 1) || last < first) {
    // A gap would make the next start refuse the log: refuse it now.
    return Status::InvalidArgument("log append of sequences " + std::to_string(first) + ".." + std::to_string(last) +
                                   " does not follow " + std::to_string(prev));
  }
  std::shared_ptr<File> f;
  {
    std::lock_guard<std::mutex> l(mu_);
    f = current_;
  }
  if (f == nullptr || f->size >= options_.segment_bytes) {
    if (f != nullptr) {
      // The closing segment must be durable before records go elsewhere.
      if (::fdatasync(f->fd) != 0) return ErrnoStatus("fsync of the log segment being closed");
    }
    LEVEE_RETURN_IF_ERROR(OpenSegmentForAppend(first));
    std::lock_guard<std::mutex> l(mu_);
    f = current_;
  }
  size_t done = 0;
  while (done < framed.size()) {
    ssize_t n = ::write(f->fd, framed.data() + done, framed.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      Status st = ErrnoStatus("append to the write-ahead log");
      // Cut off what part of it got in, so the log holds whole records only.
      if (::ftruncate(f->fd, static_cast<off_t>(f->size)) != 0 ||
          ::lseek(f->fd, static_cast<off_t>(f->size), SEEK_SET) < 0) {
        return Status::IOError(st.message() + "; and cutting the partial record off failed: " +
                               std::strerror(errno) + " (restart levee: recovery cuts it)");
      }
      return st;
    }
    done += static_cast<size_t>(n);
  }
  f->size += framed.size();
  {
    std::lock_guard<std::mutex> l(mu_);
    segments_.back().last_sequence = last;
    segments_.back().bytes = f->size;
  }
  last_sequence_.store(last, std::memory_order_release);
  unsynced_.store(true, std::memory_order_release);
  return Status::OK();
}

Status Log::Sync() {
  std::shared_ptr<File> f;
  {
    std::lock_guard<std::mutex> l(mu_);
    f = current_;
  }
  if (f == nullptr) return Status::OK();
  unsynced_.store(false, std::memory_order_release);
  if (::fdatasync(f->fd) != 0) {
    unsynced_.store(true, std::memory_order_release);
    return ErrnoStatus("fsync of the write-ahead log");
  }
  return Status::OK();
}

Status Log::ReadFrom(uint64_t after, const std::function<bool(Record&&)>& fn) const {
  std::vector<SegmentInfo> segs = Segments();
  bool stop = false;
  for (size_t i = 0; i < segs.size() && !stop; i++) {
    if (segs[i].last_sequence <= after) continue;
    ScanResult r;
    LEVEE_RETURN_IF_ERROR(ScanSegment(segs[i].path, after, /*allow_torn_tail=*/i + 1 == segs.size(),
                                      [&](Record&& rec) {
                                        if (rec.sequence > segs[i].last_sequence) return false;
                                        if (!fn(std::move(rec))) stop = true;
                                        return !stop;
                                      },
                                      &r));
  }
  return Status::OK();
}

Status Log::TrimThrough(uint64_t seq) {
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    while (segments_.size() > 1 && segments_.front().last_sequence <= seq) {
      doomed.push_back(segments_.front().path);
      segments_.erase(segments_.begin());
    }
  }
  for (const auto& p : doomed) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove log segment " + p);
  }
  return Status::OK();
}

Status Log::RemoveAll() {
  std::vector<SegmentInfo> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    doomed.swap(segments_);
    current_.reset();
  }
  for (const auto& s : doomed) {
    if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove log segment " + s.path);
  }
  last_sequence_.store(0, std::memory_order_release);
  unsynced_.store(false, std::memory_order_release);
  return SyncDir(options_.dir);
}

std::vector<SegmentInfo> Log::Segments() const {
  std::lock_guard<std::mutex> l(mu_);
  return segments_;
}

uint64_t Log::total_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t n = 0;
  for (const auto& s : segments_) n += s.bytes;
  return n;
}

}  // namespace levee::wal
