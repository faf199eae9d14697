// Manager: this server's replication role and everything around it.
//
// As a primary it accepts PSYNC (handing each replica's socket to a
// ReplicaLink thread, repl/primary.h), tracks the replicas' acks, and
// answers WAIT, min-replicas-to-write and sync-class writes from them. As a
// replica it runs one ReplicaClient (repl/replica.h) that follows its
// primary. A replica can feed replicas of its own: its log has the
// primary's sequences, so links serve it the same way.
//
// Offsets are log sequences. Two replication ids, as Redis' PSYNC2: replid
// names the history this server's log follows; replid2 the history it
// followed before its last promotion, valid through second_offset.
//
// Threads: commands and the writer call in from their threads; links and
// the client have their own; one cron thread times out waits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "commands/client.h"
#include "commands/services.h"
#include "observe/metrics.h"
#include "repl/history.h"
#include "repl/node.h"
#include "write/writer.h"

namespace levee::repl {

class ReplicaLink;
class ReplicaClient;

struct ReplIds {
  std::string replid;   // 40 hex
  std::string replid2;  // 40 zeros when none
  uint64_t second_offset = 0;  // replid2 is valid for sequences <= this
  History older;  // the ids followed before replid2, newest first (repl/history.h)
  std::vector<std::string> own;  // ids this server started (first start, promotions), newest first
};

// "No id" (replid2 when there is none): 40 zeros, as Redis.
inline const std::string kNoId(40, '0');
// A new random replication id, 40 hex digits.
std::string NewReplId();
// The ids as a History whose first entry is replid through `last`.
History HistoryOf(const ReplIds& ids, uint64_t last);
// Ids following history h (h[0] the current id), keeping `own`.
ReplIds IdsFromHistory(const History& h, std::vector<std::string> own);

struct ReplStats {
  std::atomic<uint64_t> full_syncs{0};          // served as primary
  std::atomic<uint64_t> partial_syncs{0};       // served as primary
  std::atomic<uint64_t> partial_syncs_err{0};   // PSYNCs answered with a full resync
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> replica_full_syncs{0};  // done as replica
  std::atomic<uint64_t> replica_partial_syncs{0};
  std::atomic<uint64_t> sync_writes{0};
  std::atomic<uint64_t> sync_timeouts{0};
  std::atomic<uint64_t> sync_degraded{0};
  observe::Histogram sync_wait_seconds{observe::LatencyBounds()};
  std::atomic<uint64_t> rollbacks_refused{0};
  std::atomic<uint64_t> backfilled_records{0};  // records taken from replicas that were ahead (primary side)   // full resyncs refused (replica-refuse-rollback)
  std::atomic<uint64_t> full_sync_bytes{0};     // checkpoint bytes received (replica) 
};

class Manager final : public commands::Replication, public write::ReplicationHooks {
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

  // For links and the client.
  ReplIds ids();
  void SetIds(const ReplIds& ids);
  // This server's history through its last sequence.
  History history();
  // Whether any mutation in the log's records (after, last] is sync-class
  // (or a FLUSHALL): records a client may have been told are on a replica.
  // True when the log no longer holds them all (unknown counts as yes).
  bool HoldsSyncWritesAfter(uint64_t after);
  // A replica was ahead of this primary on the same history and sent the
  // records this server lacked, now applied through `last`: this server
  // takes the replica's history and starts a new id of its own after it
  // (its old id might name records elsewhere that differ). Drops the other
  // replica links (their histories restart). Returns the new id.
  std::string AdoptBackfill(const History& replica_history, uint64_t last, ReplicaLink* keep);
  void OnAck(ReplicaLink* link);
  // Upstream chain of run ids (this server first), for loop detection.
  std::string Chain();
  void SetUpstreamChain(const std::string& chain);
  // Drops every replica link (their histories must restart).
  void DisconnectReplicas();
  void RecordReplicaOf(const std::string& value);
  // The same, and waits until their threads have ended.
  void DisconnectReplicasAndWait();
  Node* node() { return node_; }
  ReplStats& stats() { return stats_; }
  // /readyz: empty when ready, else why not.
  std::string ReadyRefusal();
  // Lag of a replica behind its primary, ms (0 on a primary).
  int64_t ReplicaLagMs();

 private:
  struct Hold {
    std::unique_ptr<write::WriteJob> job;
    uint64_t sequence;
    int64_t replicas;
    int64_t deadline_ms;  // 0: none
    bool is_wait;
    int64_t start_ms;
  };
  void Cron();
  void ReleaseReady(bool timeouts);
  void Release(Hold& h, bool timed_out);
  int64_t CountAcked(uint64_t sequence);  // links_mu_ held
  // Online replicas that acked within min-replicas-max-lag.
  int64_t GoodReplicas();
  Status LoadIds();
  Status SaveIds(const ReplIds& ids);
  void ReloadSettings();
  void StopClient();

  Node* node_;
  ReplStats stats_;
  std::atomic<bool> replica_{false};
  std::atomic<bool> stopping_{false};

  std::mutex ids_mu_;
  ReplIds ids_;
  std::string upstream_chain_;

  std::mutex client_mu_;  // guards client_, retired_, master_host_, master_port_
  std::unique_ptr<ReplicaClient> client_;
  std::vector<std::unique_ptr<ReplicaClient>> retired_;
  std::string master_host_;
  int master_port_ = 0;

  std::mutex links_mu_;  // guards links_ and holds_
  std::vector<std::shared_ptr<ReplicaLink>> links_;
  std::list<Hold> holds_;

  // Settings, re-read by the cron and on CONFIG SET.
  std::atomic<int64_t> min_replicas_{0}, min_replicas_max_lag_s_{10};
  std::atomic<int64_t> sync_replicas_{0}, sync_timeout_ms_{1000};
  std::atomic<bool> sync_fail_{true};
  std::mutex prefixes_mu_;
  std::vector<std::string> sync_prefixes_;

  std::thread cron_;
  std::mutex cron_mu_;
  std::condition_variable cron_cv_;
};

}  // namespace levee::repl
