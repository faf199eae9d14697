// Manager: this server's replication role and everything around it.
//
// As a primary it accepts PSYNC (handing each replica's socket to a
// ReplicaLink thread, repl/primary.h) and answers min-replicas-to-write
// from the links; the writes that wait for acks (WAIT, sync-class) are the
// AckTracker's (repl/acks.h). As a replica it runs one ReplicaClient
// (repl/replica.h) that follows its primary. A replica can feed replicas of
// its own: its log has the primary's sequences, so links serve it the same
// way. The links see it through LinkHost and ClientHost
// (repl/link_host.h); the ids it persists are an IdStore (repl/ids.h).
//
// Offsets are log sequences.
//
// Threads: commands and the writer call in from their threads; links and
// the client have their own; one cron thread times out held writes
// (AckTracker::Tick) and joins ended links.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "commands/client.h"
#include "commands/services.h"
#include "observe/metrics.h"
#include "repl/acks.h"
#include "repl/history.h"
#include "repl/ids.h"
#include "repl/link_host.h"
#include "repl/node.h"
#include "write/writer.h"

namespace levee::repl {

class ReplicaLink;
class ReplicaClient;

class Manager final : public commands::Replication,
                      public write::ReplicationHooks,
                      public LinkHost,
                      public ClientHost,
                      private AckCounter {
 public:
  Manager(Node* node);
  ~Manager() override;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Loads the replication ids and starts following `replicaof` (host:port,
  // empty for a primary).
  Status Start(const std::string& replicaof);
  void Stop();
  void RegisterMetrics(observe::Registry* r);

  // commands::Replication
  std::string ReplicaOf(const std::string& host, int port) override;
  void Role(resp::ReplyBuilder& rb) override;
  void Replconf(const std::shared_ptr<commands::ClientState>& client, const std::vector<std::string>& args,
                resp::ReplyBuilder& rb) override;
  void Psync(const std::shared_ptr<commands::ClientState>& client, const std::string& replid,
             const std::string& offset, resp::ReplyBuilder& rb) override;
  bool is_replica() override { return replica_.load(); }
  bool has_replicas() override;
  int64_t AckedBy(uint64_t sequence) override;
  // The replication section of INFO.
  std::string InfoSection();
  // A replica with replica-serve-stale-data off whose link is down refuses
  // reads: the error, or empty.
  std::string StaleRefusal();
  // REPLCONF levee-id: a replica names itself; replies this server's chain
  // of ids (itself and its primaries) or an error for a loop.
  void Identify(const std::string& node_id, resp::ReplyBuilder& rb);
  // REPLCONF levee-history: this server's replication history
  // ("id:through,…", repl/history.h), so a replica can tell what a full
  // resync from it would discard.
  std::string HistoryReply();
  int64_t KillReplicas() override;
  int64_t KillMasterLink() override;

  // write::ReplicationHooks
  void OnAppended(uint64_t last) override;
  uint64_t RetainFrom() override;
  std::string WriteRefusal() override;
  bool IsSyncKey(std::string_view key) override;
  void HoldForAcks(std::unique_ptr<write::WriteJob> job) override;
  void HoldForWait(std::unique_ptr<write::WriteJob> job, uint64_t sequence, int64_t replicas,
                   int64_t timeout_ms) override;

  // LinkHost and ClientHost (the links).
  Node* node() override { return node_; }
  LinkStats& stats() override { return stats_; }
  ReplIds ids() override { return ids_.Get(); }
  void SetIds(const ReplIds& ids) override { ids_.Set(ids); }
  void OnAck(ReplicaLink* link) override;
  std::string AdoptBackfill(const History& replica_history, uint64_t last, ReplicaLink* keep) override;
  bool HoldsSyncWritesAfter(uint64_t after) override;
  void SetUpstreamChain(const std::string& chain) override;
  void DisconnectReplicasAndWait() override;

  // This server's history through its last sequence.
  History history();
  // Upstream chain of run ids (this server first), for loop detection.
  std::string Chain();
  // Drops every replica link (their histories must restart).
  void DisconnectReplicas();
  void RecordReplicaOf(const std::string& value);
  AckStats& ack_stats() { return acks_.stats(); }
  // /readyz: empty when ready, else why not.
  std::string ReadyRefusal();
  // Lag of a replica behind its primary, ms (0 on a primary).
  int64_t ReplicaLagMs();

 private:
  // AckCounter (links_mu_ not held).
  int64_t CountAcked(uint64_t sequence) override;
  int64_t CountAckedLocked(uint64_t sequence);  // links_mu_ held
  // Online replicas that acked within min-replicas-max-lag.
  int64_t GoodReplicas();
  void Cron();
  void ReloadSettings();
  void StopClient();

  Node* node_;
  LinkStats stats_;
  IdStore ids_;
  AckTracker acks_;
  std::atomic<bool> replica_{false};
  std::atomic<bool> stopping_{false};

  std::mutex chain_mu_;
  std::string upstream_chain_;

  std::mutex client_mu_;  // guards client_, retired_, master_host_, master_port_
  std::unique_ptr<ReplicaClient> client_;
  std::vector<std::unique_ptr<ReplicaClient>> retired_;
  std::string master_host_;
  int master_port_ = 0;

  std::mutex links_mu_;  // guards links_
  std::vector<std::shared_ptr<ReplicaLink>> links_;

  // Settings, re-read by the cron and on CONFIG SET.
  std::atomic<int64_t> min_replicas_{0}, min_replicas_max_lag_s_{10};

  std::thread cron_;
  std::mutex cron_mu_;
  std::condition_variable cron_cv_;
};

}  // namespace levee::repl
