// MULTI/EXEC/DISCARD/WATCH/UNWATCH.
//
// Queueing happens in the dispatcher (server/connection.cc). EXEC is a write
// command: it runs on the writer thread, so the queued commands see each
// other's writes, and all they change becomes one log record in one batch.
#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "storage/write_group.h"

namespace levee::commands {
namespace {

void Multi(CommandContext& ctx, std::vector<std::string>&) {
  if (ctx.client->in_multi) return ctx.reply.Error("ERR MULTI calls can not be nested");
  ctx.client->in_multi = true;
  ctx.client->multi_error = false;
  ctx.client->queued.clear();
  ctx.reply.Ok();
}

void EndMulti(CommandContext& ctx) {
  ctx.client->in_multi = false;
  ctx.client->multi_error = false;
  ctx.client->queued.clear();
  ctx.client->queued_count = 0;
  ctx.services.clients().UnwatchAll(ctx.client.get());
}

void Discard(CommandContext& ctx, std::vector<std::string>&) {
  if (!ctx.client->in_multi) return ctx.reply.Error("ERR DISCARD without MULTI");
  EndMulti(ctx);
  ctx.reply.Ok();
}

void Exec(CommandContext& ctx, std::vector<std::string>&) {
  if (!ctx.client->in_multi) return ctx.reply.Error("ERR EXEC without MULTI");
  if (ctx.client->multi_error) {
    EndMulti(ctx);
    return ctx.reply.Error("EXECABORT Transaction discarded because of previous errors.");
  }
  if (ctx.client->watch_dirty) {
    EndMulti(ctx);
    return ctx.reply.NullArray();
  }
  auto queued = std::move(ctx.client->queued);
  ctx.client->in_multi = false;
  ctx.reply.ArrayHeader(queued.size());
  ctx.client->in_exec = true;
  for (auto& args : queued) {
    const Spec* spec = ctx.services.table().Find(args[0]);
    spec->handler(ctx, args);  // known and arity-checked when queued
  }
  ctx.client->in_exec = false;
  EndMulti(ctx);
}

void Watch(CommandContext& ctx, std::vector<std::string>& a) {
  if (ctx.client->in_multi) return ctx.reply.Error("ERR WATCH inside MULTI is not allowed");
  for (size_t i = 1; i < a.size(); i++) ctx.services.clients().Watch(ctx.client, a[i]);
  ctx.reply.Ok();
}

void Unwatch(CommandContext& ctx, std::vector<std::string>&) {
  ctx.services.clients().UnwatchAll(ctx.client.get());
  ctx.reply.Ok();
}

}  // namespace

void RegisterTransactionFamily(CommandTable* t) {
  auto add = [t](std::string name, int arity, uint32_t flags, int fk, int lk, std::string summary, Handler h) {
    t->Add(Spec{std::move(name), arity, flags | kNoQueue | kFast, fk, lk, fk ? 1 : 0, "transactions",
                std::move(summary), std::move(h)});
  };
  add("multi", 1, kConnection, 0, 0, "Starts a transaction.", Multi);
  add("exec", 1, kOnWriter, 0, 0, "Runs the queued commands atomically, as one log record.", Exec);
  add("discard", 1, kConnection, 0, 0, "Drops the queued commands.", Discard);
  add("watch", -2, kConnection | kOnWriter, 1, -1, "Makes EXEC fail if one of the keys changes before it.", Watch);
  add("unwatch", 1, kConnection, 0, 0, "Forgets all watched keys.", Unwatch);
}

}  // namespace levee::commands
