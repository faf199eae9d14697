// What the commands need from the rest of the server, as interfaces:
// Services (configuration, clients, statistics, auth, SCAN cursors, ...),
// Replication (implemented by repl::Manager) and Backups (server/backups.h).
// Implemented by server::Server; commands call them from whichever thread
// runs the command, so every implementation is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace levee {
class Config;
namespace observe {
class CommandStats;
class SlowLog;
}  // namespace observe
namespace resp {
class ReplyBuilder;
}
}  // namespace levee

namespace levee::commands {

struct ClientState;
class ClientRegistry;
class CommandTable;
class PubSub;

// Replication as the commands see it (implemented by repl::Manager).
class Replication {
 public:
  virtual ~Replication() = default;
  // REPLICAOF host port; an empty host means NO ONE. Error text or empty.
  virtual std::string ReplicaOf(const std::string& host, int port) = 0;
  // ROLE's reply.
  virtual void Role(resp::ReplyBuilder& rb) = 0;
  // REPLCONF option value ...: a replica's handshake before PSYNC (kept on
  // the client), or an ordinary client's no-op ACK. Replies OK, the answer
  // levee's own options ask for, or an error.
  virtual void Replconf(const std::shared_ptr<ClientState>& client, const std::vector<std::string>& args,
                        resp::ReplyBuilder& rb) = 0;
  // PSYNC replid offset from a client that sent REPLCONF before: sets
  // client.handoff, or replies an error.
  virtual void Psync(const std::shared_ptr<ClientState>& client, const std::string& replid,
                     const std::string& offset, resp::ReplyBuilder& rb) = 0;
  virtual bool is_replica() = 0;
  // Whether any replica link is attached (PUBLISH is logged only then).
  virtual bool has_replicas() = 0;
  // Replicas that acked `sequence` (WAIT inside MULTI, or WAIT 0).
  virtual int64_t AckedBy(uint64_t sequence) = 0;
  // CLIENT KILL TYPE replica: closes every replica link; how many.
  virtual int64_t KillReplicas() = 0;
  // CLIENT KILL TYPE master: closes the link to the primary (the replica
  // reconnects at once); how many (0 or 1).
  virtual int64_t KillMasterLink() = 0;
};

// BACKUP: the server's checkpoints, freeze/thaw and scheduled backups
// (server/backups.h does the work).
class Backups {
 public:
  virtual ~Backups() = default;
  // args[0] is "backup".
  virtual void Handle(const std::vector<std::string>& args, resp::ReplyBuilder& rb) = 0;
};

class Services {
 public:
  virtual ~Services() = default;
  virtual Config& config() = 0;
  virtual ClientRegistry& clients() = 0;
  virtual const CommandTable& table() = 0;
  // INFO text for the named sections ("default", "all", or a list).
  virtual std::string Info(const std::vector<std::string>& sections) = 0;
  virtual void ResetStats() = 0;
  // SCAN cursors: the key a cursor resumes at.
  virtual uint64_t SaveCursor(std::string next_key) = 0;
  virtual bool LoadCursor(uint64_t cursor, std::string* next_key) = 0;
  // Whether a password is configured, and checking one.
  virtual bool RequiresPassword() = 0;
  // In time independent of the password's content and length.
  virtual bool CheckPassword(std::string_view password) = 0;
  // A wrong password from client (as user): counted, logged rate-limited
  // (never the password).
  virtual void RecordAuthFailure(const ClientState& client, std::string_view user) = 0;
  // Waits (at most 200 ms) until the key count includes every applied write.
  virtual void SettleKeyCount() = 0;
  virtual std::atomic<uint64_t>& expired_keys() = 0;
  virtual observe::CommandStats& command_stats() = 0;
  virtual observe::SlowLog& slowlog() = 0;
  virtual Replication& replication() = 0;
  virtual PubSub& pubsub() = 0;
  // Whether the writer applies only a primary's stream (client writes are
  // refused and nothing of this server's own is logged).
  virtual bool ReplicaMode() = 0;
  // CONFIG REWRITE: the effective settings written back to the --config
  // file. Error text, or empty.
  virtual std::string RewriteConfig() = 0;
  virtual Backups& backups() = 0;
  // SHUTDOWN: stop the process the way SIGTERM does (graceful; returns at
  // once, the stop runs elsewhere).
  virtual void RequestShutdown() = 0;
};

}  // namespace levee::commands
