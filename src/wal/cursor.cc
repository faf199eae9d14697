#include "wal/cursor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/coding.h"

namespace levee::wal {
namespace {

Status PRead(int fd, uint64_t off, size_t n, std::string* out, const std::string& path) {
  size_t start = out->size();
  out->resize(start + n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out->data() + start + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      out->resize(start);
      return Status::IOError("read log segment " + path + ": " + (r == 0 ? "unexpected end" : std::strerror(errno)));
    }
    done += static_cast<size_t>(r);
  }
  return Status::OK();
}

}  // namespace

LogCursor::~LogCursor() { CloseSegment(); }

void LogCursor::CloseSegment() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status LogCursor::OpenSegment(const SegmentInfo& s) {
  CloseSegment();
  fd_ = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    if (errno == ENOENT) return Status::NotFound("log segment " + s.path + " was trimmed");
    return Status::IOError("open log segment " + s.path + ": " + std::strerror(errno));
  }
  segment_first_ = s.first_sequence;
  pos_ = kSegmentHeaderSize;
  return Status::OK();
}

Status LogCursor::Seek(uint64_t after) {
  CloseSegment();
  next_ = after + 1;
  auto segs = log_->Segments();
  if (segs.empty()) return Status::OK();  // Read waits for a segment starting at next_
  if (next_ < segs.front().first_sequence) {
    return Status::NotFound("the log starts at " + std::to_string(segs.front().first_sequence) + ", after " +
                            std::to_string(next_));
  }
  const SegmentInfo* seg = nullptr;
  for (const auto& s : segs) {
    if (s.first_sequence <= next_ && next_ <= s.last_sequence + 1) seg = &s;
  }
  if (seg == nullptr) {
    return Status::NotFound("sequence " + std::to_string(next_) + " is past the log's end " +
                            std::to_string(segs.back().last_sequence));
  }
  LEVEE_RETURN_IF_ERROR(OpenSegment(*seg));
  // Walk the frame headers to the record wanted.
  uint64_t seq = seg->first_sequence;
  std::string hdr;
  while (seq < next_) {
    hdr.clear();
    LEVEE_RETURN_IF_ERROR(PRead(fd_, pos_, kFrameHeaderSize, &hdr, seg->path));
    pos_ += kFrameHeaderSize + DecodeFixed32(hdr.data());
    seq++;
  }
  return Status::OK();
}

Status LogCursor::Read(size_t max_bytes, std::string* out, uint64_t* last) {
  auto segs = log_->Segments();
  const SegmentInfo* cur = nullptr;
  const SegmentInfo* following = nullptr;
  for (size_t i = 0; i < segs.size(); i++) {
    if (fd_ >= 0 && segs[i].first_sequence == segment_first_) {
      cur = &segs[i];
      if (i + 1 < segs.size()) following = &segs[i + 1];
    }
  }
  if (fd_ >= 0 && cur == nullptr) {
    // Our segment was trimmed while open; it is complete (only closed
    // segments are trimmed), so read on to its end, then move on.
    for (const auto& s : segs) {
      if (s.first_sequence == next_) following = &s;
    }
  }
  if (fd_ < 0) {
    for (const auto& s : segs) {
      if (s.first_sequence == next_) {
        LEVEE_RETURN_IF_ERROR(OpenSegment(s));
        cur = &s;
        break;
      }
    }
    if (fd_ < 0) {
      if (!segs.empty() && segs.front().first_sequence > next_) {
        return Status::NotFound("log records from " + std::to_string(next_) + " were trimmed");
      }
      return Status::OK();  // nothing new yet
    }
  }
  uint64_t end;
  if (cur != nullptr) {
    end = cur->bytes;
  } else {
    off_t sz = ::lseek(fd_, 0, SEEK_END);
    end = sz < 0 ? pos_ : static_cast<uint64_t>(sz);
  }
  if (pos_ >= end) {
    bool done_with_segment = (cur == nullptr) || following != nullptr;
    if (done_with_segment && following != nullptr && following->first_sequence == next_) {
      LEVEE_RETURN_IF_ERROR(OpenSegment(*following));
      return Read(max_bytes, out, last);
    }
    if (cur == nullptr && following == nullptr) {
      auto fs = log_->Segments();
      if (!fs.empty() && fs.front().first_sequence > next_) {
        return Status::NotFound("log records from " + std::to_string(next_) + " were trimmed");
      }
    }
    return Status::OK();
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(end - pos_, std::max<size_t>(max_bytes, kFrameHeaderSize)));
  std::string buf;
  LEVEE_RETURN_IF_ERROR(PRead(fd_, pos_, want, &buf, "segment " + std::to_string(segment_first_)));
  size_t off = 0;
  while (off + kFrameHeaderSize <= buf.size()) {
    uint32_t len = DecodeFixed32(buf.data() + off);
    uint32_t crc = DecodeFixed32(buf.data() + off + 4);
    if (off + kFrameHeaderSize + len > buf.size()) {
      if (off > 0) break;  // the rest next time
      // One record larger than max_bytes: read it whole.
      if (pos_ + kFrameHeaderSize + len > end) {
        return Status::Corruption("log record at offset " + std::to_string(pos_) + " runs past the segment's end");
      }
      buf.clear();
      LEVEE_RETURN_IF_ERROR(PRead(fd_, pos_, kFrameHeaderSize + len, &buf, "segment " + std::to_string(segment_first_)));
      continue;
    }
    std::string_view payload(buf.data() + off + kFrameHeaderSize, len);
    if (Crc32(payload) != crc || len < 8) {
      return Status::Corruption("log record at offset " + std::to_string(pos_ + off) + " of segment " +
                                std::to_string(segment_first_) + " fails its checksum");
    }
    uint64_t seq = DecodeFixed64(payload.data());
    if (seq != next_) {
      return Status::Corruption("log record at offset " + std::to_string(pos_ + off) + " has sequence " +
                                std::to_string(seq) + ", expected " + std::to_string(next_));
    }
    off += kFrameHeaderSize + len;
    next_++;
  }
  out->append(buf.data(), off);
  pos_ += off;
  if (off > 0) *last = next_ - 1;
  return Status::OK();
}

}  // namespace levee::wal
