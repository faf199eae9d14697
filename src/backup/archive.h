// The log archive: levee's write-ahead log records copied continuously into
// a backup repository, so a restore can replay them on top of a backup up to
// a chosen moment (point-in-time recovery). Layout: docs/formats/backup.md.
//
//   wal/<timeline>/history                  where the timeline forked from its parent
//   wal/<timeline>/<first>-<last>           records first..last (20-digit sequences), as
//                                           a levee log segment, stored as an object
//                                           (compressed, encrypted with the repository key)
//
// A timeline is a replication id (repl/manager.h): a promotion starts a new
// one whose history names its parent and the last sequence they share, so
// records an old primary wrote and lost in a failover are never replayed
// into the new primary's history. Segments of one timeline may overlap
// (their shared records are the same); a restore takes each sequence from
// the first segment that holds it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backup/repo.h"
#include "common/status.h"
#include "wal/record.h"

namespace levee::backup {

struct Timeline {
  std::string id;      // 40 hex digits
  std::string parent;  // empty for a first timeline
  uint64_t fork = 0;   // the last sequence shared with parent
  int64_t created_ms = 0;
};

struct ArchivedSegment {
  std::string timeline;
  uint64_t first = 0, last = 0;
  uint64_t stored_bytes = 0;
  std::string key;  // in the store
};

struct ArchiveIndex {
  std::map<std::string, Timeline> timelines;
  std::vector<ArchivedSegment> segments;  // by timeline, then first
  // Highest archived sequence of timeline (0: none).
  uint64_t LastArchived(const std::string& timeline) const;
  // The timeline a restore follows by default: the newest one.
  std::string Latest() const;
};

Status LoadArchiveIndex(Repository& repo, ArchiveIndex* out);
Status WriteTimeline(Repository& repo, const Timeline& t);
// Stores framed records first..last (as wal::LogCursor reads them) under
// timeline. Durable when this returns.
Status PutArchivedSegment(Repository& repo, const std::string& timeline, uint64_t first, uint64_t last,
                          std::string_view framed);

// Calls fn for every archived record with sequence > after along timeline's
// history (its own segments, then its parent's up to the fork, and so on),
// in sequence order, until fn returns false or the archive ends. A hole
// (a sequence no segment on the path holds, before the archive's end) is
// NotFound naming it.
Status ReadArchive(Repository& repo, const ArchiveIndex& index, const std::string& timeline, uint64_t after,
                   const std::function<bool(wal::Record&&)>& fn);

struct PointInTimeOptions {
  int64_t target_ms = 0;   // replay records made at or before this time
  std::string timeline;    // empty: ArchiveIndex::Latest()
};

struct PointInTimeResult {
  std::string timeline;
  uint64_t base_sequence = 0;  // the backup's applied sequence
  uint64_t records = 0;        // archived records added after it
  uint64_t last_sequence = 0;
  int64_t last_time_ms = 0;    // of the last record added (0: none)
  int64_t next_time_ms = 0;    // of the first record left out (0: the archive ended first)
};

// Replaces the log in wal_dir (base's, restored and not yet in use; see
// RestoreBackup's before_commit) with the archived records after base's
// applied sequence made at or before target_ms, so the next start of levee
// replays exactly those. A record's time is when the writer made it; the
// first record past target_ms ends the replay.
StatusOr<PointInTimeResult> ApplyArchive(Repository& repo, const Manifest& base, const std::string& wal_dir,
                                         const PointInTimeOptions& options);

}  // namespace levee::backup
