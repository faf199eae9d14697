// ReplicaClient: a replica's side of its link to the primary, a thread with
// a state machine (docs/formats/replication.md):
//
//   kConnect     waiting to (re)connect, with backoff after a failure
//   kConnecting  TCP connect in progress
//   kHandshake   AUTH, PING, REPLCONF, PSYNC
//   kTransfer    full resync: receiving checkpoint files into sync-staging/
//   kConnected   applying the primary's records (master_link_status:up)
//
// Any error — a cut, a timeout, a record that fails its checksum or does
// not follow the last one — closes the connection and goes back to
// kConnect; the next PSYNC resumes from what this server has applied.
// Nothing partial is ever applied: a batch reaches the writer only whole.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "net/socket.h"
#include "repl/history.h"
#include "repl/ids.h"
#include "repl/stream.h"

namespace levee::repl {

class ClientHost;

class ReplicaClient {
 public:
  enum class State { kConnect, kConnecting, kHandshake, kTransfer, kConnected };
  ReplicaClient(ClientHost* owner, std::string host, int port);
  ~ReplicaClient();
  ReplicaClient(const ReplicaClient&) = delete;
  ReplicaClient& operator=(const ReplicaClient&) = delete;

  void Start();
  void Stop();  // does not wait
  // Closes the current connection (CLIENT KILL TYPE master); the client
  // reconnects and resumes with PSYNC.
  void DropLink();
  void Join();
  bool finished() const { return finished_.load(); }

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  State state() const { return state_.load(); }
  const char* state_name() const;
  bool link_up() const { return state_.load() == State::kConnected; }
  // The primary answered FULLRESYNC and the copy is not in yet: the data
  // here is no prefix of the primary's history (it may be another history
  // altogether), so its sequence must not be offered as a replication
  // offset (see Manager::InfoSection).
  bool copy_owed() const { return copy_owed_.load(); }
  // Records this replica refused to discard in its last handshake (0 when
  // it did not refuse): see CheckRollback.
  uint64_t rollback_refused() const { return rollback_.load(); }
  int64_t last_io_ms() const { return last_io_ms_.load(); }
  int64_t link_down_since_ms() const { return down_since_ms_.load(); }
  uint64_t primary_last_sequence() const { return primary_last_.load(); }
  // How far behind the primary, in ms (0 when caught up).
  int64_t lag_ms() const;
  std::string last_error() const;
  // Full resync progress.
  uint64_t transfer_total() const { return transfer_total_.load(); }
  uint64_t transfer_done() const { return transfer_done_.load(); }

 private:
  void Run();
  Status Session();
  Status Command(const std::vector<std::string>& args, std::string* reply);
  // Before PSYNC: an error when a full resync from a primary with history
  // `theirs` would discard records holding sync-class writes that this
  // server received from an earlier primary (replica-refuse-rollback).
  // Then *backfill_after is set when the primary holds nothing
  // past where the histories part, so it can take our records after it.
  Status CheckRollback(const ReplIds& ids, uint64_t have, const History& theirs,
                       std::optional<uint64_t>* backfill_after);
  // Sends our log records (after, last] as REPLCONF levee-records chunks.
  Status SendBackfill(uint64_t after, uint64_t last);
  Status Transfer(uint64_t sequence);
  Status Stream();
  Status ReadBlock(BlockType* type, std::string* payload, uint32_t* crc, int timeout_ms);
  Status ApplyRecords(std::string frames);
  Status SendAck(bool force);
  void SetError(const std::string& e);

  ClientHost* m_;
  const std::string host_;
  const int port_;
  net::Socket sock_;
  net::Waker waker_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, finished_{false}, drop_{false};
  std::atomic<State> state_{State::kConnect};
  std::atomic<bool> copy_owed_{false};
  std::atomic<int64_t> last_io_ms_{0}, down_since_ms_{0};
  std::atomic<uint64_t> primary_last_{0};
  std::atomic<uint64_t> rollback_{0};
  std::atomic<int64_t> applied_time_ms_{0};  // primary's clock of the last applied record
  std::atomic<uint64_t> transfer_total_{0}, transfer_done_{0};

  // Batches handed to the writer and not yet applied.
  std::atomic<int> in_flight_{0};
  uint64_t expect_next_ = 0;  // next sequence the stream must carry
  uint64_t last_acked_ = 0;
  int64_t last_ack_ms_ = 0;

  mutable std::mutex mu_;  // guards error_, apply_error_
  std::string error_;
  std::string apply_error_;
};

}  // namespace levee::repl
