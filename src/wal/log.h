// Log: levee's write-ahead log, a directory of numbered segment files.
//
// Each segment is named after the sequence of its first record
// (00000000000000000042.wal), starts with a 20-byte header and holds framed
// records (wal/record.h) with sequences that rise by exactly one, across
// segments too. Layout and recovery rules: docs/formats/wal.md.
//
// Threads: Append, TrimThrough are for the writer thread only. Sync may be
// called from any thread (the everysec syncer). Segments(), ReadFrom and
// last_sequence are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "wal/record.h"

namespace levee::wal {

// magic "LEVEEWAL", fixed32 version, fixed64 first sequence.
inline constexpr size_t kSegmentHeaderSize = 20;

struct LogOptions {
  std::string dir;
  uint64_t segment_bytes = 64ull << 20;  // roll to a new segment past this size
};

struct SegmentInfo {
  uint64_t first_sequence = 0;
  uint64_t last_sequence = 0;  // first_sequence - 1 when empty
  uint64_t bytes = 0;
  std::string path;
};

// What a scan of one segment found.
struct ScanResult {
  uint64_t good_bytes = 0;     // length of the valid prefix
  uint64_t last_sequence = 0;  // of the last valid record (first-1 if none)
  uint64_t records = 0;
  bool torn_tail = false;      // an incomplete or torn final record
  std::string torn_detail;
};

// Reads segment `path` and checks framing, checksums and sequence order,
// calling fn (if set) for each record with sequence > after. A damaged
// record followed by more data is Corruption naming the file and offset; a
// damaged final record is a torn tail when allow_torn_tail, else Corruption.
Status ScanSegment(const std::string& path, uint64_t after, bool allow_torn_tail,
                   const std::function<bool(Record&&)>& fn, ScanResult* result);

// The same over a segment's bytes in memory (an archived segment); path
// names it in errors.
Status ScanSegmentBytes(std::string_view data, const std::string& path, uint64_t after, bool allow_torn_tail,
                        const std::function<bool(Record&&)>& fn, ScanResult* result);
// The 20-byte header of a segment whose first record is first_sequence.
std::string SegmentHeader(uint64_t first_sequence);
std::string SegmentFileName(uint64_t first_sequence);

class Log {
 public:
  // Opens the directory (creating it), checks every segment and cuts a torn
  // tail off the last one. *warnings gets one line per thing repaired.
  static StatusOr<std::unique_ptr<Log>> Open(const LogOptions& options,
                                             std::vector<std::string>* warnings);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Sequence of the newest record; 0 for an empty log.
  uint64_t last_sequence() const { return last_sequence_.load(std::memory_order_acquire); }
  // Sequence of the oldest record kept; 0 for an empty log.
  uint64_t first_sequence() const;

  // Appends framed records whose sequences run first..last (first must be
  // last_sequence()+1 unless the log is empty). Not durable until Sync().
  // On failure nothing of it stays in the log (a partial write is cut off).
  Status Append(std::string_view framed, uint64_t first, uint64_t last);
  // Makes everything appended so far durable (fdatasync).
  Status Sync();
  bool has_unsynced() const { return unsynced_.load(std::memory_order_acquire); }

  // Calls fn for every record with sequence > after, in order, until fn
  // returns false.
  Status ReadFrom(uint64_t after, const std::function<bool(Record&&)>& fn) const;

  // Deletes closed segments whose records all have sequence <= seq.
  Status TrimThrough(uint64_t seq);
  // Deletes every segment; the next Append starts a new log at its first
  // sequence. For when LevelDB already holds everything the log has.
  Status RemoveAll();

  std::vector<SegmentInfo> Segments() const;
  uint64_t total_bytes() const;

 private:
  struct File;
  explicit Log(LogOptions options) : options_(std::move(options)) {}
  Status OpenSegmentForAppend(uint64_t first_sequence);

  const LogOptions options_;
  mutable std::mutex mu_;  // guards segments_ and current_
  std::vector<SegmentInfo> segments_;
  std::shared_ptr<File> current_;  // last segment, open for append
  std::atomic<uint64_t> last_sequence_{0};
  std::atomic<bool> unsynced_{false};
};

}  // namespace levee::wal
