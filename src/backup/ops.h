// The backup operations: create, restore, verify, prune. The CLI
// (cli/backup_cmd.cc) and the server's scheduler (server/backups.cc) call
// these; docs/formats/backup.md describes what they read and write.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backup/progress.h"
#include "backup/repo.h"
#include "backup/source.h"
#include "common/status.h"

namespace levee::backup {

struct TransferOptions {
  int parallelism = 4;             // objects in flight at once
  uint64_t max_bytes_per_sec = 0;  // 0: no limit
  Progress* progress = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  // Run the worker threads at low CPU and I/O priority (inside the server,
  // so the foreground keeps its latency).
  bool background = false;
  // Restore: write the data directory's files with direct I/O where the
  // file system allows it.
  bool direct_io = true;
};

// Lowers the calling thread's CPU and I/O (best effort, lowest) priority.
// The CPU policy is the process-wide one SetBackgroundCpuIdle chose:
// SCHED_IDLE (the default: the thread runs only on CPU time nothing else
// wants, so a backup costs the foreground almost no latency, but waits on
// a server that keeps its cores busy) or nice 10 (a share of the CPU
// however busy the server is).
void LowerThreadPriority();
void SetBackgroundCpuIdle(bool idle);

struct CreateOptions : TransferOptions {
  uint64_t chunk_bytes = 32ull << 20;  // files are stored in pieces of at most this size
  int64_t lock_wait_ms = 3600 * 1000;
};

// Backs up source into repo. Files whose path, size and modification time
// match the newest backup of the same data directory are taken from it
// without being read; every other piece is read, hashed, and uploaded only
// if its object is not in the repository yet. The manifest is written
// last: a failed or killed backup leaves no backup listed.
StatusOr<Manifest> CreateBackup(Repository& repo, Source& source, const CreateOptions& options);

// Restores backup id ("latest" for the newest) into data_dir, which must
// hold no database yet. Every object is checked against its id; on any
// failure nothing is left in data_dir and the error names the object.
// before_commit (when set) runs on the fully restored, synced staging
// directory (its db/ and wal/) before it becomes data_dir's; its failure
// fails the restore, leaving nothing (point-in-time restore rewrites wal/).
using RestoreHook = std::function<Status(const std::string& staging_dir, const Manifest& m)>;
StatusOr<Manifest> RestoreBackup(Repository& repo, const std::string& id, const std::string& data_dir,
                                 const TransferOptions& options, const RestoreHook& before_commit = {});

struct VerifyOptions : TransferOptions {
  bool deep = false;
  std::string scratch_dir;  // for --deep: where to restore (default: the system temp dir)
};

struct VerifyReport {
  Manifest manifest;
  uint64_t objects = 0, bytes = 0;
  std::vector<std::string> problems;  // one line per bad object or failed check
  bool deep = false;
  std::string digest;  // --deep: the restored data's digest
  uint64_t keys = 0;
};

// Rehashes every object of the backup; --deep also restores it, opens it
// with LevelDB's paranoid checks, reads every key and compares the digest
// and applied sequence with the manifest's. problems is empty when good.
StatusOr<VerifyReport> VerifyBackup(Repository& repo, const std::string& id, const VerifyOptions& options);

struct PruneOptions {
  int keep_last = 0, keep_daily = 0, keep_weekly = 0;
  bool dry_run = false;
  int64_t lock_wait_ms = 3600 * 1000;
};

struct PruneReport {
  std::vector<std::string> kept, removed;
  uint64_t objects_deleted = 0, bytes_freed = 0;
  uint64_t archive_segments_deleted = 0;  // archived log no kept backup can replay
};

// Forgets backups the policy does not keep, then deletes the objects no
// remaining backup uses. Holds the repository's exclusive lock, so a
// running backup's objects are never deleted under it.
StatusOr<PruneReport> Prune(Repository& repo, const PruneOptions& options);

// "90s", "30m", "6h", "1d" -> milliseconds; "off" -> 0. False if malformed.
bool ParseInterval(const std::string& s, int64_t* ms);

// Which of manifests (oldest first) the policy keeps.
std::vector<bool> RetentionKeeps(const std::vector<Manifest>& manifests, const PruneOptions& options);

}  // namespace levee::backup
