// LogCursor: reads the write-ahead log forward from a sequence, as the
// framed bytes stored, for a replication sender. It follows the log across
// segment files and never reads past what Log::Append has finished writing.
//
// A cursor keeps its segment open: the writer trimming that segment does not
// disturb it. When the next segment it needs is gone, Read says NotFound and
// the replica it feeds needs a full resync.
//
// Threads: one cursor per thread; the Log may be appended to meanwhile.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "wal/log.h"

namespace levee::wal {

class LogCursor {
 public:
  explicit LogCursor(const Log* log) : log_(log) {}
  ~LogCursor();
  LogCursor(const LogCursor&) = delete;
  LogCursor& operator=(const LogCursor&) = delete;

  // The next record read will be after+1. NotFound when the log no longer
  // holds it (trimmed); after may equal the log's last sequence (caught up).
  Status Seek(uint64_t after);
  // Appends whole framed records to *out, about max_bytes at most (at least
  // one record when one is there), and sets *last to the last sequence
  // appended (unchanged when nothing is new). Checks each record's checksum.
  Status Read(size_t max_bytes, std::string* out, uint64_t* last);
  uint64_t next_sequence() const { return next_; }

 private:
  Status OpenSegment(const SegmentInfo& s);
  void CloseSegment();

  const Log* log_;
  int fd_ = -1;
  uint64_t segment_first_ = 0;
  uint64_t pos_ = 0;   // next byte to read in the open segment
  uint64_t next_ = 1;  // next sequence wanted
};

}  // namespace levee::wal
