// Replication commands: REPLICAOF/SLAVEOF, ROLE, REPLCONF, PSYNC, WAIT.
// The work is repl::Manager's (through Services::replication()); these
// parse arguments and answer as Redis does.
#include <cstdlib>

#include "commands/args.h"
#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"

namespace levee::commands {
namespace {

void ReplicaOf(CommandContext& ctx, std::vector<std::string>& a) {
  if (EqualsIgnoreCase(a[1], "no") && EqualsIgnoreCase(a[2], "one")) {
    std::string err = ctx.services.replication().ReplicaOf("", 0);
    if (!err.empty()) return ctx.reply.Error(err);
    return ctx.reply.Ok();
  }
  int64_t port;
  if (!ParseInt64(a[2], &port) || port < 1 || port > 65535) return ctx.reply.Error("ERR Invalid master port");
  std::string err = ctx.services.replication().ReplicaOf(a[1], static_cast<int>(port));
  if (!err.empty()) return ctx.reply.Error(err);
  ctx.reply.Ok();
}

void Role(CommandContext& ctx, std::vector<std::string>&) { ctx.services.replication().Role(ctx.reply); }

void Replconf(CommandContext& ctx, std::vector<std::string>& a) {
  ctx.services.replication().Replconf(ctx.client, a, ctx.reply);
}

void Psync(CommandContext& ctx, std::vector<std::string>& a) {
  ctx.services.replication().Psync(ctx.client, a[1], a[2], ctx.reply);
}

void Sync(CommandContext& ctx, std::vector<std::string>&) {
  ctx.reply.Error("ERR levee replicates with PSYNC only (its stream is not an RDB file): use a levee replica");
}

void Wait(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t n, timeout;
  if (!ParseInt64(a[1], &n)) return ctx.reply.Error(kErrNotInteger);
  if (!ParseInt64(a[2], &timeout)) return ctx.reply.Error("ERR timeout is not an integer or out of range");
  if (timeout < 0) return ctx.reply.Error("ERR timeout is negative");
  Replication& r = ctx.services.replication();
  if (r.is_replica()) return ctx.reply.Error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
  if (ctx.client->in_exec || n <= 0) {
    return ctx.reply.Integer(r.AckedBy(ctx.client->last_write_sequence));
  }
  // The writer holds the job and replies when enough replicas acked this
  // client's last write (or the timeout passed).
  ctx.client->wait_pending = true;
  ctx.client->wait_replicas = n;
  ctx.client->wait_timeout_ms = timeout;
}

}  // namespace

void RegisterReplicationFamily(CommandTable* t) {
  auto add = [t](std::string name, int arity, uint32_t flags, std::string summary, Handler h) {
    t->Add(Spec{std::move(name), arity, flags, 0, 0, 0, "replication", std::move(summary), std::move(h)});
  };
  add("replicaof", 3, kAdmin | kDangerous, "Makes this server a replica of another, or (NO ONE) a primary.", ReplicaOf);
  add("slaveof", 3, kAdmin | kDangerous, "Old name of REPLICAOF.", ReplicaOf);
  add("role", 1, kFast, "Returns the replication role and its state.", Role);
  add("replconf", -1, kAdmin | kNoQueue | kDangerous, "Replica handshake: listening port, capabilities, identity.", Replconf);
  add("psync", 3, kAdmin | kNoQueue | kDangerous, "Starts a replication stream from a log offset.", Psync);
  add("sync", 1, kAdmin | kNoQueue | kDangerous, "Refused: levee replicas use PSYNC.", Sync);
  // On the writer: it knows the caller's last write and holds the reply
  // until replicas acked it.
  add("wait", 3, kOnWriter, "Waits until replicas acknowledged the caller's writes.", Wait);
}

}  // namespace levee::commands
