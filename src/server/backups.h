// The server's side of backups:
//  - BACKUP OPEN/READ/DIGEST/CLOSE lend checkpoint leases (backup/source.h)
//    to `levee backup create --server`, which reads the files through them
//    (or straight from disk when it runs beside the server); a lease idle
//    for two minutes is dropped, so a killed client pins nothing for long.
//  - BACKUP FREEZE/THAW hold the write barrier for volume snapshots
//    (Velero hooks), releasing it by itself after the given time.
//  - With backup-repo set, a scheduler thread backs up every
//    backup-schedule, applies retention, and verifies every
//    backup-verify-schedule; BACKUP RUN starts one now. Results go to the
//    log and to the levee_backup_* metrics.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backup/repo.h"
#include "backup/source.h"
#include "commands/services.h"

namespace levee::observe {
class Registry;
}

namespace levee::server {

class Server;

class BackupService final : public commands::Backups {
 public:
  explicit BackupService(Server* server);
  ~BackupService() override;

  // Checks the settings and starts the scheduler.
  Status Start();
  void Stop();
  void RegisterMetrics(observe::Registry* registry);
  // Around a full resync's swap of the database: cancels a running backup,
  // drops every lease and holds new ones off until Resume.
  void Suspend();
  void Resume();

  void Handle(const std::vector<std::string>& args, resp::ReplyBuilder& rb) override;

 private:
  struct Lease {
    std::shared_ptr<backup::CheckpointLease> lease;  // a READ may use it while CLOSE drops it
    int64_t last_used_ms = 0;
    int64_t taken_ms = 0;  // dropped backup-lease-max-seconds after this, used or not
  };
  void Open(const std::vector<std::string>& a, resp::ReplyBuilder& rb);
  void Freeze(int64_t seconds, resp::ReplyBuilder& rb);
  void Thaw();
  void Schedule();
  // Sets the process-wide CPU policy of backup threads from backup-cpu-priority.
  void ApplyCpuPriority();
  // One backup (and retention) to backup-repo; logs and records the result.
  void RunBackup(const std::string& why);
  void RunVerify();
  StatusOr<std::unique_ptr<backup::Repository>> OpenRepo(bool create);
  // The log archive (backup-wal-archive): every backup-wal-archive-interval,
  // what the log holds past the archive goes to backup-repo's wal/.
  struct ArchiveState {
    std::unique_ptr<backup::Repository> repo;
    std::string repo_url, timeline;
    uint64_t archived = 0;  // last sequence archived on timeline
  };
  void ArchiveLoop();
  Status ArchivePass(ArchiveState* s);
  bool ArchivingHere();

  Server* server_;
  std::mutex mu_;  // guards leases_, suspended_, the run and freeze state below
  std::condition_variable cv_;
  std::map<std::string, Lease> leases_;
  bool suspended_ = false, stopping_ = false, run_now_ = false, running_ = false;
  std::atomic<bool> cancel_{false};
  // Whether this server's role (backup-schedule-role) runs the schedule.
  bool ScheduledHere();
  std::thread scheduler_;

  bool frozen_ = false, thaw_ = false;
  std::thread freezer_;

  std::thread archiver_;
  bool archiving_ = false;  // a pass is running (guarded by mu_)
  std::atomic<uint64_t> archive_last_sequence_{0}, archive_failures_{0}, archive_gaps_{0}, archive_bytes_{0};
  std::atomic<double> archive_success_s_{0}, archive_caught_up_s_{0};

  // Metrics.
  std::atomic<double> last_success_s_{0}, last_failure_s_{0}, last_duration_s_{0}, verify_success_s_{0},
      verify_failure_s_{0};
  std::atomic<uint64_t> bytes_total_{0}, last_new_bytes_{0}, last_barrier_us_{0}, backups_total_{0},
      failures_total_{0};
  std::string last_error_, last_id_;
};

}  // namespace levee::server
