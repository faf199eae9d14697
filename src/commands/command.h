// Commands: metadata as data, handlers by family.
//
// A command's Spec says its arity, key positions and flags; the dispatcher
// (server/) reads the flags: kWrite sends a command to the writer thread and
// into the write-ahead log, everything else runs on the client's io thread
// against LevelDB directly. Families register their commands from one place:
// RegisterAllCommands() in registry.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "resp/reply.h"
#include "storage/view.h"

namespace levee {
class Config;
namespace observe {
class CommandStats;
class SlowLog;
}  // namespace observe
namespace storage {
class Engine;
class WriteGroup;
}  // namespace storage
namespace wal {
class Log;
}
}  // namespace levee

namespace levee::commands {

enum Flag : uint32_t {
  kWrite = 1 << 0,     // mutates data: runs on the writer, is logged
  kReadOnly = 1 << 1,  // reads data
  kAdmin = 1 << 2,
  kFast = 1 << 3,
  kNoAuth = 1 << 4,    // allowed before AUTH
  kNoQueue = 1 << 5,   // runs at once even inside MULTI (MULTI, EXEC, DISCARD, WATCH...)
  kConnection = 1 << 6,  // changes connection state
  kOnWriter = 1 << 7,    // runs on the writer thread though it writes nothing itself (EXEC, WATCH)
  kLogged = 1 << 8,      // runs on the writer and may log a record that changes no data (PUBLISH)
  kPubSubContext = 1 << 9,  // allowed to a RESP2 client in subscribed mode
  // Can stall the server, lose data or change who it trusts (Redis' ACL
  // category @dangerous): FLUSHALL, CONFIG, DEBUG, BACKUP, REPLICAOF... What
  // per-client permissions (ACL users) will hang on; COMMAND INFO lists it.
  kDangerous = 1 << 10,
  kDisabled = 1 << 11,  // refused from every client (disabled-commands); set at start-up
  kFreesSpace = 1 << 12,  // only removes data: may use the free-disk reserve (DEL, UNLINK, FLUSHALL...)
};

struct CommandContext;
using Handler = std::function<void(CommandContext& ctx, std::vector<std::string>& args)>;

struct Spec {
  std::string name;  // lowercase
  int arity = 0;     // >0: exactly; <0: at least -arity (command name included)
  uint32_t flags = 0;
  int first_key = 0, last_key = 0, key_step = 0;
  std::string group;    // for COMMAND DOCS: "string", "generic", "server", ...
  std::string summary;
  Handler handler;
  size_t id = 0;  // dense index, set by CommandTable::Add (for per-command statistics)
  bool ArityOk(size_t argc) const {
    return arity > 0 ? argc == static_cast<size_t>(arity) : argc >= static_cast<size_t>(-arity);
  }
};

class CommandTable {
 public:
  void Add(Spec spec);
  // Case-insensitive; nullptr when unknown.
  const Spec* Find(std::string_view name) const;
  // Marks a command kDisabled (disabled-commands); InvalidArgument naming it
  // when there is no such command.
  Status Disable(std::string_view name);
  const std::map<std::string, Spec, std::less<>>& all() const { return specs_; }

 private:
  std::map<std::string, Spec, std::less<>> specs_;
};

// Per-connection state. The owning io thread changes it; other threads (CLIENT
// LIST, the writer during EXEC) read it under mu or through atomics. While a
// connection waits for the writer, the writer may change it: the hand-off
// through the writer's queue orders the accesses.
struct ClientState {
  uint64_t id = 0;
  std::string addr, laddr;
  bool local = false;  // connected from a loopback address (server/connection.h IsLoopback)
  int64_t created_ms = 0;
  std::atomic<int64_t> last_active_ms{0};
  std::atomic<int> protocol{2};
  std::atomic<bool> authenticated{false};
  bool auth_failed = false;  // set by a failed AUTH/HELLO AUTH; the io layer then pauses the connection
  std::atomic<bool> close_after_reply{false};
  std::atomic<size_t> qbuf{0}, omem{0};
  std::atomic<uint64_t> commands{0};

  mutable std::mutex mu;
  std::string name;     // guarded by mu
  std::string lib_name, lib_ver;  // CLIENT SETINFO; guarded by mu
  std::atomic<const Spec*> last_cmd{nullptr};  // for CLIENT LIST; specs live as long as the table

  // MULTI state (io thread, or the writer while it runs EXEC).
  std::atomic<bool> in_multi{false};        // atomic: CLIENT LIST reads it from other threads
  bool multi_error = false;                 // a command failed to queue: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  std::atomic<size_t> queued_count{0};      // queued.size(), for CLIENT LIST
  std::set<std::string> watched;
  std::atomic<bool> watch_dirty{false};

  // Closes the connection from any thread (set by the io layer).
  std::function<void()> kill;
  // Queues out-of-band bytes (a pub/sub message) for the client, from any
  // thread (set by the io layer).
  std::function<void(const std::string&)> deliver;

  // Pub/sub subscriptions; the sets are guarded by PubSub's lock, the counts
  // are readable anywhere (CLIENT LIST, CLIENT KILL TYPE pubsub).
  std::set<std::string> channels, patterns;
  std::atomic<size_t> sub_count{0}, psub_count{0};
  bool subscribed() const { return sub_count.load() + psub_count.load() > 0; }

  // Replication (writer thread while a job runs): the sequence of this
  // client's last logged write, for WAIT; a WAIT the writer must hold.
  uint64_t last_write_sequence = 0;
  bool in_exec = false;
  bool wait_pending = false;
  int64_t wait_replicas = 0, wait_timeout_ms = 0;
  // A replica's handshake (REPLCONF before PSYNC), on its io thread.
  int repl_listening_port = 0;
  std::string repl_ip;  // REPLCONF ip-address (replica-announce-ip)
  bool repl_capa_zstd = false;
  std::string repl_node_id;
  std::string repl_history;    // REPLCONF levee-history: the replica's history (repl/history.h)
  bool repl_backfill = false;  // REPLCONF levee-backfill: it would rather send its extra records than lose them
  // Set by PSYNC: the io layer hands the socket (and any input not yet
  // parsed) to replication once the replies before it are written.
  std::function<void(int fd, std::string unparsed)> handoff;
};

// Replication as the commands see it (implemented by repl::Manager).
class Replication {
 public:
  virtual ~Replication() = default;
  // REPLICAOF host port; an empty host means NO ONE. Error text or empty.
  virtual std::string ReplicaOf(const std::string& host, int port) = 0;
  // ROLE's reply.
  virtual void Role(resp::ReplyBuilder& rb) = 0;
  // The replication section of INFO.
  virtual std::string InfoSection() = 0;
  // PSYNC replid offset from a client that sent REPLCONF before: sets
  // client.handoff, or replies an error.
  virtual void Psync(const std::shared_ptr<ClientState>& client, const std::string& replid,
                     const std::string& offset, resp::ReplyBuilder& rb) = 0;
  // REPLCONF levee-id: a replica names itself; replies this server's chain
  // of ids (itself and its primaries) or an error for a loop.
  virtual void Identify(const std::string& node_id, resp::ReplyBuilder& rb) = 0;
  // REPLCONF levee-history: this server's replication history
  // ("id:through,…", repl/history.h), so a replica can tell what a full
  // resync from it would discard.
  virtual std::string HistoryReply() = 0;
  virtual bool is_replica() = 0;
  // Whether any replica link is attached (PUBLISH is logged only then).
  virtual bool has_replicas() = 0;
  // Replicas that acked `sequence` (WAIT inside MULTI, or WAIT 0).
  virtual int64_t AckedBy(uint64_t sequence) = 0;
  // A replica with replica-serve-stale-data off whose link is down refuses
  // reads: the error, or empty.
  virtual std::string StaleRefusal() = 0;
  // CLIENT KILL TYPE replica: closes every replica link; how many.
  virtual int64_t KillReplicas() = 0;
  // CLIENT KILL TYPE master: closes the link to the primary (the replica
  // reconnects at once); how many (0 or 1).
  virtual int64_t KillMasterLink() = 0;
};

// Open connections, for CLIENT LIST/KILL and WATCH.
class PubSub;

class ClientRegistry {
 public:
  void Add(const std::shared_ptr<ClientState>& c);
  void Remove(uint64_t id);
  std::vector<std::shared_ptr<ClientState>> Snapshot() const;
  size_t size() const;

  // WATCH bookkeeping: a write to a watched key makes its watchers' EXEC fail.
  void Watch(const std::shared_ptr<ClientState>& c, const std::string& key);
  void UnwatchAll(ClientState* c);
  void TouchKey(std::string_view key);
  void TouchAll();
  bool any_watched() const { return watched_count_.load(std::memory_order_acquire) > 0; }

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<ClientState>> clients_;
  std::map<std::string, std::vector<std::weak_ptr<ClientState>>, std::less<>> watches_;
  std::atomic<size_t> watched_count_{0};
};

// Server statistics and services the commands use; implemented by server/.
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
  virtual storage::Engine& engine() = 0;
  virtual wal::Log& log() = 0;
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

struct CommandContext {
  const std::shared_ptr<ClientState>& client;
  Services& services;
  storage::DataView& view;
  storage::WriteGroup* group;  // non-null on the writer thread
  resp::ReplyBuilder& reply;
  int64_t now_ms;

  // Looks a key up, treating expired values as absent. On a storage error
  // it replies the error and returns false.
  bool Lookup(std::string_view key, storage::StoredValue* v, bool* found);
  // Replies an error for a failed storage operation.
  void ReplyStatus(const Status& st);
  // The writer's group; replies an error and returns nullptr off the writer
  // (a write command dispatched wrongly: a bug, not a client mistake).
  storage::WriteGroup* Writer();
};

// Error strings users and client libraries match on.
inline constexpr std::string_view kErrSyntax = "ERR syntax error";
inline constexpr std::string_view kErrNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kErrNotFloat = "ERR value is not a valid float";
inline constexpr std::string_view kErrWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view kErrNoAuth = "NOAUTH Authentication required.";
// The reply to a command in disabled-commands.
std::string DisabledError(std::string_view cmd);
std::string WrongArgsError(std::string_view cmd);

// Parsing helpers with Redis' strictness.
bool ParseInt64(std::string_view s, int64_t* v);
bool ParseDouble(std::string_view s, double* v);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
// Redis glob: * ? [abc] [^a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view s, bool nocase = false);

// Registration, one function per family (each in its own file).
void RegisterStringFamily(CommandTable* t);
void RegisterKeyFamily(CommandTable* t);
void RegisterServerFamily(CommandTable* t);
void RegisterTransactionFamily(CommandTable* t);
void RegisterObserveFamily(CommandTable* t);
void RegisterReplicationFamily(CommandTable* t);
void RegisterPubSubFamily(CommandTable* t);
void RegisterAllCommands(CommandTable* t);

}  // namespace levee::commands
