// Command specs: what a command is (arity, key positions, flags, handler),
// the table the dispatcher looks commands up in, the context a handler runs
// with, and registration of every family (RegisterAllCommands in
// command.cc). The dispatcher (server/connection.cc) reads the flags: kWrite
// sends a command to the writer thread (write/) and into the write-ahead log;
// everything else runs on the client's io thread against LevelDB directly.
//
// Threads: the table is filled at start-up (registration, disabled-commands)
// and only read afterwards, from any thread. A CommandContext belongs to the
// thread running the command.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "resp/reply.h"
#include "storage/view.h"

namespace levee::storage {
class WriteGroup;
}

namespace levee::commands {

struct ClientState;
class Services;

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
