// CorruptionLog: damage LevelDB reports, named by the table file it was
// found in, counted, and remembered across restarts.
//
// LevelDB 1.23's Status for a damaged block ("block checksum mismatch")
// does not say which file the block came from. levee's Env wraps every
// table file LevelDB opens, and each read records, per thread, which file it
// read; LevelDB checks a block right after reading it on the same thread,
// so for a point lookup the file last read there is the damaged one. A
// background compaction that meets damage reports it through the info log.
//
// Each corruption is counted (INFO, metrics), logged at ERROR (rate-limited),
// and written to <db>/LEVEE-CORRUPTION, so the next start says so too until
// `levee check` passes on the directory and removes it. A corruption no file
// could be named for (a scan's, a compaction's) starts one survey per run: a
// background thread reads every table file on its own, checksums verified,
// and names each damaged one (log, INFO, the marker).
//
// Thread-safe.
#pragma once

#include <leveldb/status.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace levee::storage {

// Called by the Env's table files on each read (any thread).
void NoteTableRead(uint64_t file_number, bool sst);
// "000005.ldb": the table file this thread read last; empty if none.
std::string LastTableRead();

// Reads every table file (*.ldb, *.sst) in db_dir on its own, block
// checksums verified, without LevelDB's block cache: "db/NNNNNN.ldb: <why>"
// for each damaged one. A merged scan stops at the first damage and cannot
// tell which file held it; this can. stop (if set) is polled between files.
std::vector<std::string> FindDamagedTables(const std::string& db_dir, const std::atomic<bool>* stop = nullptr);

class CorruptionLog {
 public:
  // db_dir: LevelDB's directory. Reads an earlier run's marker.
  explicit CorruptionLog(std::string db_dir);
  // Stops a survey between two files, and waits for it.
  ~CorruptionLog();
  CorruptionLog(const CorruptionLog&) = delete;
  CorruptionLog& operator=(const CorruptionLog&) = delete;

  // Converts a LevelDB status as FromLevelDB does; a corruption is recorded
  // and, when a point read on this thread found it, named by file ("... in
  // db/000005.ldb"): a lookup reads one file at a time, so the file it read
  // last holds the damaged block. A scan merges many files and a
  // compaction's error reaches writes later, so those are not named here
  // (`levee check` names every damaged file).
  Status Note(const leveldb::Status& s, std::string_view what, bool point_read);
  // A line of LevelDB's info log that reports a corruption (a compaction's).
  void NoteBackground(const std::string& line);

  uint64_t count() const { return count_.load(); }
  // The file and error of the newest corruption (this run's, or else the
  // marker's from an earlier run); empty when there is none.
  std::string last_file() const;
  std::string last_error() const;
  // The directory holds a marker: damage was found, by this run or before,
  // and no `levee check` has passed since.
  bool marked() const { return marked_.load(); }

  // For `levee check`, after it found no damage.
  static void ClearMarker(const std::string& db_dir);
  static constexpr const char* kMarkerName = "LEVEE-CORRUPTION";

 private:
  void Record(const std::string& file, const std::string& error);
  void WriteMarker(const std::string& file, const std::string& error);
  void StartSurvey();
  const std::string db_dir_;
  std::atomic<bool> survey_started_{false}, stop_{false};
  std::thread survey_;
  std::atomic<uint64_t> count_{0};
  std::atomic<bool> marked_{false};
  mutable std::mutex mu_;
  std::string last_file_, last_error_;  // guarded by mu_
};

}  // namespace levee::storage
