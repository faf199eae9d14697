// ReplicaLink: the primary's side of one replica, a thread with a state
// machine (docs/formats/replication.md):
//
//   kCheckpoint  full resync: taking a checkpoint on the writer thread
//   kSendFiles   sending the checkpoint's files the replica lacks
//   kOnline      streaming log records as the writer appends them
//   kClosed      the link ended (error, REPLICAOF, shutdown); the thread exits
//
// The replica's acks (REPLCONF ACK n) arrive on the same socket; the link
// reports them to its LinkHost (repl/link_host.h), which releases WAIT and
// sync-class writes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/socket.h"
#include "repl/history.h"
#include "resp/parser.h"

namespace levee::storage {
class Checkpoint;
}

namespace levee::repl {

class LinkHost;

class ReplicaLink {
 public:
  enum class State { kCheckpoint, kSendFiles, kOnline, kClosed };
  struct Params {
    int fd = -1;
    std::string unparsed;  // input read before the hand-off
    std::string ip;
    int listening_port = 0;
    bool zstd = false;
    std::string node_id;
    bool full = false;       // full resync; else partial from `after`
    uint64_t after = 0;      // partial: the replica has everything through this
    std::string reply;       // +CONTINUE / +FULLRESYNC line, sent first (FULLRESYNC completed by the link)
    // The replica is ahead: it sends its records after `after` first
    // (+LEVEE-BACKFILL), then the link continues as a partial resync.
    bool backfill = false;
    History replica_history;
  };
  ReplicaLink(LinkHost* host, Params p);
  ~ReplicaLink();
  ReplicaLink(const ReplicaLink&) = delete;
  ReplicaLink& operator=(const ReplicaLink&) = delete;

  void Start();
  // Asks the thread to end; Join waits for it.
  void Stop();
  void Join();
  // New records are in the log.
  void Wake() { waker_.Signal(); }

  State state() const { return state_.load(); }
  const char* state_name() const;
  const std::string& ip() const { return p_.ip; }
  int port() const { return p_.listening_port; }
  const std::string& node_id() const { return p_.node_id; }
  uint64_t acked() const { return acked_.load(); }
  int64_t last_ack_ms() const { return last_ack_ms_.load(); }
  uint64_t sent() const { return sent_.load(); }
  // Lowest sequence this link still needs from the log (UINT64_MAX: none).
  uint64_t needs_from() const { return needs_from_.load(); }
  bool done() const { return state_.load() == State::kClosed; }

 private:
  void Run();
  Status FullSync(uint64_t* through);
  // Receives the replica's records after *after, applies them, takes its
  // history and answers +CONTINUE; *after becomes the last one.
  Status Backfill(uint64_t* after);
  Status Stream(uint64_t after);
  Status Send(std::string_view data);
  // Calls fn on each complete command the replica sent (stops at an error).
  Status EachCommand(const std::function<Status(std::vector<std::string>&)>& fn);
  // Reads and handles what the replica sent; *got is set if any command came.
  Status HandleInput(const std::string& expect_cmd, std::vector<std::string>* got);
  void Throttle(size_t bytes);

  LinkHost* m_;
  Params p_;
  net::Socket sock_;
  resp::RequestParser parser_;
  net::Waker waker_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<State> state_{State::kCheckpoint};
  std::atomic<uint64_t> acked_{0};
  std::atomic<int64_t> last_ack_ms_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> needs_from_{UINT64_MAX};
  // Rate limit of full-resync file bytes.
  double tokens_ = 0;
  int64_t tokens_ms_ = 0;
};

}  // namespace levee::repl
