// SLOWLOG GET|LEN|RESET.
#include "commands/args.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "observe/command_stats.h"

namespace levee::commands {
namespace {

void SlowLogCmd(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  observe::SlowLog& log = ctx.services.slowlog();
  if (sub == "len" && a.size() == 2) return ctx.reply.Integer(static_cast<int64_t>(log.size()));
  if (sub == "reset" && a.size() == 2) {
    log.Reset();
    return ctx.reply.Ok();
  }
  if (sub == "get" && a.size() <= 3) {
    int64_t n = 10;
    if (a.size() == 3 && (!ParseInt64(a[2], &n) || n < -1)) {
      return ctx.reply.Error("ERR count should be greater than or equal to -1");
    }
    auto entries = log.Newest(n < 0 ? SIZE_MAX : static_cast<size_t>(n));
    ctx.reply.ArrayHeader(entries.size());
    for (const auto& e : entries) {
      ctx.reply.ArrayHeader(6);
      ctx.reply.Integer(static_cast<int64_t>(e.id));
      ctx.reply.Integer(e.unix_time);
      ctx.reply.Integer(e.duration_us);
      ctx.reply.ArrayHeader(e.args.size());
      for (const auto& arg : e.args) ctx.reply.Bulk(arg);
      ctx.reply.Bulk(e.client_addr);
      ctx.reply.Bulk(e.client_name);
    }
    return;
  }
  ctx.reply.Error("ERR unknown subcommand or wrong number of arguments for '" + a[1] + "'. Try SLOWLOG HELP.");
}

}  // namespace

void RegisterObserveFamily(CommandTable* t) {
  t->Add(Spec{"slowlog", -2, kAdmin, 0, 0, 0, "server", "Reads or resets the log of slow commands.", SlowLogCmd});
}

}  // namespace levee::commands
