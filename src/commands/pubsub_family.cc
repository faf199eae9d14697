// Pub/sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.
//
// PUBLISH runs on the writer. On a primary with replicas it is logged (a
// record that changes no data) and delivered once its group is committed,
// so replicas deliver it too, in order with the writes around it. On a replica it is
// delivered to local subscribers only, as in Redis.
#include "commands/args.h"
#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "commands/pubsub.h"
#include "storage/write_group.h"

namespace levee::commands {
namespace {

int64_t SubscriptionCount(const ClientState& c) {
  return static_cast<int64_t>(c.sub_count.load() + c.psub_count.load());
}

void Confirm(CommandContext& ctx, std::string_view kind, const std::string* name) {
  ctx.reply.PushHeader(3);
  ctx.reply.Bulk(kind);
  if (name != nullptr) ctx.reply.Bulk(*name);
  else ctx.reply.Null();
  ctx.reply.Integer(SubscriptionCount(*ctx.client));
}

void SubscribeAny(CommandContext& ctx, std::vector<std::string>& a, bool pattern) {
  for (size_t i = 1; i < a.size(); i++) {
    ctx.services.pubsub().Subscribe(ctx.client, a[i], pattern);
    Confirm(ctx, pattern ? "psubscribe" : "subscribe", &a[i]);
  }
}

void UnsubscribeAny(CommandContext& ctx, std::vector<std::string>& a, bool pattern) {
  const char* kind = pattern ? "punsubscribe" : "unsubscribe";
  PubSub& ps = ctx.services.pubsub();
  if (a.size() > 1) {
    for (size_t i = 1; i < a.size(); i++) {
      ps.Unsubscribe(ctx.client.get(), a[i], pattern);
      Confirm(ctx, kind, &a[i]);
    }
    return;
  }
  // No names: all of this kind, one confirmation each (a null name when none).
  // The sets change only on this client's own thread; copying is safe.
  const std::set<std::string> names = pattern ? ctx.client->patterns : ctx.client->channels;
  if (names.empty()) return Confirm(ctx, kind, nullptr);
  for (const auto& n : names) {
    ps.Unsubscribe(ctx.client.get(), n, pattern);
    Confirm(ctx, kind, &n);
  }
}

void Subscribe(CommandContext& ctx, std::vector<std::string>& a) { SubscribeAny(ctx, a, false); }
void Psubscribe(CommandContext& ctx, std::vector<std::string>& a) { SubscribeAny(ctx, a, true); }
void Unsubscribe(CommandContext& ctx, std::vector<std::string>& a) { UnsubscribeAny(ctx, a, false); }
void Punsubscribe(CommandContext& ctx, std::vector<std::string>& a) { UnsubscribeAny(ctx, a, true); }

void Publish(CommandContext& ctx, std::vector<std::string>& a) {
  PubSub& ps = ctx.services.pubsub();
  if (ctx.group == nullptr || ctx.services.ReplicaMode()) return ctx.reply.Integer(ps.Publish(a[1], a[2]));
  int64_t receivers = ps.Receivers(a[1]);
  // Logged only while replicas are attached: a primary alone (say, an old
  // primary restarted before Sentinel demotes it, receiving Sentinel's
  // hellos) then keeps a log that is still a prefix of the new primary's,
  // and rejoins with a partial resync.
  ctx.group->Publish(a[1], a[2], ctx.services.replication().has_replicas());
  ctx.reply.Integer(receivers);
}

void PubsubCmd(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  PubSub& ps = ctx.services.pubsub();
  if (sub == "channels" && a.size() <= 3) {
    auto names = ps.Channels(a.size() == 3 ? std::string_view(a[2]) : std::string_view());
    ctx.reply.ArrayHeader(names.size());
    for (const auto& n : names) ctx.reply.Bulk(n);
    return;
  }
  if (sub == "numsub") {
    ctx.reply.MapHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); i++) {
      ctx.reply.Bulk(a[i]);
      ctx.reply.Integer(ps.NumSub(a[i]));
    }
    return;
  }
  if (sub == "numpat" && a.size() == 2) return ctx.reply.Integer(ps.NumPat());
  if (sub == "shardchannels" && a.size() <= 3) return ctx.reply.ArrayHeader(0);
  if (sub == "shardnumsub") {
    ctx.reply.MapHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); i++) {
      ctx.reply.Bulk(a[i]);
      ctx.reply.Integer(0);
    }
    return;
  }
  ctx.reply.Error("ERR unknown subcommand or wrong number of arguments for '" + a[1] +
                  "'. levee's PUBSUB knows CHANNELS, NUMSUB and NUMPAT.");
}

}  // namespace

void RegisterPubSubFamily(CommandTable* t) {
  auto add = [t](std::string name, int arity, uint32_t flags, std::string summary, Handler h) {
    t->Add(Spec{std::move(name), arity, flags, 0, 0, 0, "pubsub", std::move(summary), std::move(h)});
  };
  const uint32_t S = kConnection | kFast | kPubSubContext;
  add("subscribe", -2, S, "Listens for messages published to the channels.", Subscribe);
  add("psubscribe", -2, S, "Listens for messages published to channels matching the patterns.", Psubscribe);
  add("unsubscribe", -1, S, "Stops listening to the channels (all when none are given).", Unsubscribe);
  add("punsubscribe", -1, S, "Stops listening to the patterns (all when none are given).", Punsubscribe);
  add("publish", 3, kLogged | kFast, "Posts a message to a channel; replicas deliver it too.", Publish);
  add("pubsub", -2, 0, "Inspects channels and subscriptions (CHANNELS, NUMSUB, NUMPAT).", PubsubCmd);
}

}  // namespace levee::commands
