// What the replication links need from the replication manager, and no
// more: a primary's per-replica link (ReplicaLink, repl/primary.h) sees a
// LinkHost, a replica's client of its primary (ReplicaClient,
// repl/replica.h) a ClientHost. repl::Manager implements both.
//
// Threads: called from the links' own threads; implementations lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "repl/history.h"
#include "repl/ids.h"

namespace levee::repl {

class Node;
class ReplicaLink;

// Counters kept by the links (INFO replication, metrics).
struct LinkStats {
  std::atomic<uint64_t> full_syncs{0};          // served as primary
  std::atomic<uint64_t> partial_syncs{0};       // served as primary
  std::atomic<uint64_t> partial_syncs_err{0};   // PSYNCs answered with a full resync
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> replica_full_syncs{0};  // done as replica
  std::atomic<uint64_t> replica_partial_syncs{0};
  std::atomic<uint64_t> rollbacks_refused{0};   // full resyncs refused (replica-refuse-rollback)
  std::atomic<uint64_t> backfilled_records{0};  // records taken from replicas that were ahead (primary side)
  std::atomic<uint64_t> full_sync_bytes{0};     // checkpoint bytes received (replica)
};

class LinkHost {
 public:
  virtual ~LinkHost() = default;
  virtual Node* node() = 0;
  virtual LinkStats& stats() = 0;
  virtual ReplIds ids() = 0;
  // The replica behind `link` acknowledged more.
  virtual void OnAck(ReplicaLink* link) = 0;
  // A replica was ahead of this primary on the same history and sent the
  // records this server lacked, now applied through `last`: this server
  // takes the replica's history and starts a new id of its own after it
  // (its old id might name records elsewhere that differ). Drops the other
  // replica links (their histories restart). Returns the new id.
  virtual std::string AdoptBackfill(const History& replica_history, uint64_t last, ReplicaLink* keep) = 0;
};

class ClientHost {
 public:
  virtual ~ClientHost() = default;
  virtual Node* node() = 0;
  virtual LinkStats& stats() = 0;
  virtual ReplIds ids() = 0;
  virtual void SetIds(const ReplIds& ids) = 0;
  // Whether any mutation in the log's records (after, last] is sync-class
  // (or a FLUSHALL): records a client may have been told are on a replica.
  // True when the log no longer holds them all (unknown counts as yes).
  virtual bool HoldsSyncWritesAfter(uint64_t after) = 0;
  // The primary's chain of run ids, for loop detection.
  virtual void SetUpstreamChain(const std::string& chain) = 0;
  // Drops this server's own replicas (their histories must restart) and
  // waits until their threads have ended.
  virtual void DisconnectReplicasAndWait() = 0;
};

}  // namespace levee::repl
