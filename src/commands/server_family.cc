// Connection and server commands: PING, HELLO, AUTH, INFO, CONFIG, CLIENT,
// COMMAND, TIME, DEBUG.

#include <chrono>
#include <cstring>
#include <thread>

#include "commands/args.h"
#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "commands/docs.h"
#include "common/coding.h"
#include "common/config.h"
#include "storage/digest.h"
#include "storage/write_group.h"

namespace levee::commands {
namespace {

using storage::StoredValue;

constexpr std::string_view kServerVersion = "7.0.0";  // the Redis feature level levee speaks

void Ping(CommandContext& ctx, std::vector<std::string>& a) {
  if (a.size() > 2) return ctx.reply.Error(WrongArgsError("ping"));
  if (ctx.reply.protocol() == 2 && ctx.client->subscribed()) {
    // A subscribed RESP2 connection only carries arrays, as in Redis.
    ctx.reply.ArrayHeader(2);
    ctx.reply.Bulk("pong");
    return ctx.reply.Bulk(a.size() == 2 ? a[1] : "");
  }
  if (a.size() == 2) ctx.reply.Bulk(a[1]);
  else ctx.reply.SimpleString("PONG");
}

void Echo(CommandContext& ctx, std::vector<std::string>& a) { ctx.reply.Bulk(a[1]); }

void Quit(CommandContext& ctx, std::vector<std::string>&) {
  ctx.client->close_after_reply = true;
  ctx.reply.Ok();
}

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stops the server as SIGTERM
// does. levee has nothing to save (every acknowledged write is in the log,
// which the stop syncs), so SAVE and NOSAVE mean the same; NOW and FORCE
// are accepted. As in Redis, success has no reply: the connection closes.
void Shutdown(CommandContext& ctx, std::vector<std::string>& a) {
  bool abort = false, save = false, nosave = false;
  for (size_t i = 1; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "abort")) abort = true;
    else if (EqualsIgnoreCase(a[i], "save")) save = true;
    else if (EqualsIgnoreCase(a[i], "nosave")) nosave = true;
    else if (!EqualsIgnoreCase(a[i], "now") && !EqualsIgnoreCase(a[i], "force")) {
      ctx.reply.Error(kErrSyntax);
      return;
    }
  }
  if (save && nosave) {  // as Redis: the two contradict each other, so nothing stops
    ctx.reply.Error(kErrSyntax);
    return;
  }
  if (abort) {
    ctx.reply.Error(a.size() == 2 ? "ERR No shutdown in progress." : std::string(kErrSyntax));
    return;
  }
  ctx.client->close_after_reply = true;
  ctx.services.RequestShutdown();
}

// legacy: the one-argument AUTH <password>. As in Redis, without a
// password the default user takes any password when named (AUTH default x,
// HELLO ... AUTH default x) and the one-argument form is an error.
bool Authenticate(CommandContext& ctx, std::string_view user, std::string_view pass, bool legacy = false) {
  if (!ctx.services.RequiresPassword() && legacy) {
    ctx.reply.Error(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?");
    return false;
  }
  const bool password_ok = !ctx.services.RequiresPassword() || ctx.services.CheckPassword(pass);
  if (!password_ok || user != "default") {
    ctx.services.RecordAuthFailure(*ctx.client, user);
    ctx.client->auth_failed = true;
    ctx.reply.Error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  ctx.client->authenticated = true;
  return true;
}

void Auth(CommandContext& ctx, std::vector<std::string>& a) {
  if (a.size() > 3) return ctx.reply.Error(kErrSyntax);
  bool ok = a.size() == 2 ? Authenticate(ctx, "default", a[1], /*legacy=*/true) : Authenticate(ctx, a[1], a[2]);
  if (ok) ctx.reply.Ok();
}

bool ValidClientName(std::string_view n) {
  for (char c : n) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

void SetName(CommandContext& ctx, const std::string& name) {
  std::lock_guard<std::mutex> l(ctx.client->mu);
  ctx.client->name = name;
}

void Hello(CommandContext& ctx, std::vector<std::string>& a) {
  int proto = ctx.client->protocol;
  size_t i = 1;
  if (a.size() >= 2) {
    int64_t v;
    if (!ParseInt64(a[1], &v)) return ctx.reply.Error("ERR Protocol version is not an integer or out of range");
    if (v < 2 || v > 3) return ctx.reply.Error("NOPROTO unsupported protocol version");
    proto = static_cast<int>(v);
    i = 2;
  }
  std::string setname;
  bool have_name = false;
  for (; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "auth") && i + 2 < a.size()) {
      if (!Authenticate(ctx, a[i + 1], a[i + 2])) return;
      i += 2;
    } else if (EqualsIgnoreCase(a[i], "setname") && i + 1 < a.size()) {
      setname = a[++i];
      if (!ValidClientName(setname)) {
        return ctx.reply.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      }
      have_name = true;
    } else {
      return ctx.reply.Error("ERR Syntax error in HELLO option '" + a[i] + "'");
    }
  }
  if (ctx.services.RequiresPassword() && !ctx.client->authenticated) {
    return ctx.reply.Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                           "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                           "select the RESP protocol version at the same time");
  }
  if (have_name) SetName(ctx, setname);
  ctx.client->protocol = proto;
  ctx.reply.set_protocol(proto);
  ctx.reply.MapHeader(7);
  ctx.reply.Bulk("server");
  ctx.reply.Bulk("levee");
  ctx.reply.Bulk("version");
  ctx.reply.Bulk(kServerVersion);
  ctx.reply.Bulk("proto");
  ctx.reply.Integer(proto);
  ctx.reply.Bulk("id");
  ctx.reply.Integer(static_cast<int64_t>(ctx.client->id));
  ctx.reply.Bulk("mode");
  ctx.reply.Bulk("standalone");
  ctx.reply.Bulk("role");
  ctx.reply.Bulk("master");
  ctx.reply.Bulk("modules");
  ctx.reply.ArrayHeader(0);
}

void Select(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t db;
  if (!ParseInt64(a[1], &db)) return ctx.reply.Error(kErrNotInteger);
  if (db != 0) return ctx.reply.Error("ERR DB index is out of range");
  ctx.reply.Ok();
}

void Time(CommandContext& ctx, std::vector<std::string>&) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  ctx.reply.ArrayHeader(2);
  ctx.reply.Bulk(std::to_string(us / 1000000));
  ctx.reply.Bulk(std::to_string(us % 1000000));
}

void Info(CommandContext& ctx, std::vector<std::string>& a) {
  std::vector<std::string> sections;
  for (size_t i = 1; i < a.size(); i++) sections.push_back(ToLower(a[i]));
  ctx.reply.Verbatim(ctx.services.Info(sections));
}

std::vector<std::string> FlagNames(uint32_t f) {
  std::vector<std::string> out;
  if (f & kWrite) out.push_back("write");
  if (f & kReadOnly) out.push_back("readonly");
  if (f & kAdmin) out.push_back("admin");
  if (f & kFast) out.push_back("fast");
  if (f & kNoAuth) out.push_back("no_auth");
  return out;
}

void CommandInfoEntry(CommandContext& ctx, const Spec& s) {
  ctx.reply.ArrayHeader(10);
  ctx.reply.Bulk(s.name);
  ctx.reply.Integer(s.arity);
  auto flags = FlagNames(s.flags);
  ctx.reply.SetHeader(flags.size());
  for (const auto& f : flags) ctx.reply.SimpleString(f);
  ctx.reply.Integer(s.first_key);
  ctx.reply.Integer(s.last_key);
  ctx.reply.Integer(s.key_step);
  std::vector<std::string> categories = {"@" + s.group};
  if (s.flags & kAdmin) categories.push_back("@admin");
  if (s.flags & kDangerous) categories.push_back("@dangerous");
  ctx.reply.SetHeader(categories.size());
  for (const auto& c : categories) ctx.reply.SimpleString(c);
  ctx.reply.ArrayHeader(0);  // tips
  ctx.reply.ArrayHeader(0);  // key specs
  ctx.reply.ArrayHeader(0);  // subcommands
}

void CommandDocsEntry(CommandContext& ctx, const Spec& s) {
  auto args = CommandArguments(s.name);
  ctx.reply.Bulk(s.name);
  ctx.reply.MapHeader(args.empty() ? 3 : 4);
  ctx.reply.Bulk("summary");
  ctx.reply.Bulk(s.summary);
  ctx.reply.Bulk("since");
  ctx.reply.Bulk("1.0.0");
  ctx.reply.Bulk("group");
  ctx.reply.Bulk(s.group);
  if (!args.empty()) {
    ctx.reply.Bulk("arguments");
    ReplyArguments(ctx.reply, args);
  }
}

void Command(CommandContext& ctx, std::vector<std::string>& a) {
  const auto& all = ctx.services.table().all();
  if (a.size() == 1) {
    ctx.reply.ArrayHeader(all.size());
    for (const auto& [n, s] : all) CommandInfoEntry(ctx, s);
    return;
  }
  std::string sub = ToLower(a[1]);
  if (sub == "count") return ctx.reply.Integer(static_cast<int64_t>(all.size()));
  if (sub == "info") {
    if (a.size() == 2) {
      ctx.reply.ArrayHeader(all.size());
      for (const auto& [n, s] : all) CommandInfoEntry(ctx, s);
      return;
    }
    ctx.reply.ArrayHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); i++) {
      const Spec* s = ctx.services.table().Find(a[i]);
      if (s) CommandInfoEntry(ctx, *s);
      else ctx.reply.NullArray();
    }
    return;
  }
  if (sub == "docs") {
    std::vector<const Spec*> specs;
    if (a.size() == 2) {
      for (const auto& [n, s] : all) specs.push_back(&s);
    } else {
      for (size_t i = 2; i < a.size(); i++) {
        if (const Spec* s = ctx.services.table().Find(a[i])) specs.push_back(s);
      }
    }
    ctx.reply.MapHeader(specs.size());
    for (const Spec* s : specs) CommandDocsEntry(ctx, *s);
    return;
  }
  if (sub == "list") {
    ctx.reply.ArrayHeader(all.size());
    for (const auto& [n, s] : all) ctx.reply.Bulk(n);
    return;
  }
  ctx.reply.Error("ERR unknown subcommand '" + a[1] + "'. Try COMMAND HELP.");
}

void Config(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  levee::Config& cfg = ctx.services.config();
  if (sub == "get" && a.size() >= 3) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : levee::Config::Entries()) {
      for (size_t i = 2; i < a.size(); i++) {
        if (GlobMatch(a[i], e.name, true)) {
          out.emplace_back(e.name, cfg.GetString(e.name));
          break;
        }
      }
    }
    ctx.reply.MapHeader(out.size());
    for (const auto& [k, v] : out) {
      ctx.reply.Bulk(k);
      ctx.reply.Bulk(v);
    }
    return;
  }
  if (sub == "set" && a.size() >= 4 && a.size() % 2 == 0) {
    // All or nothing: on a bad value, the ones already set are put back.
    std::vector<std::pair<std::string, std::string>> done;
    for (size_t i = 2; i < a.size(); i += 2) {
      std::string name = ToLower(a[i]);
      std::string old = cfg.GetString(name);
      Status st = cfg.Set(name, a[i + 1], "CONFIG SET");
      if (!st.ok()) {
        for (auto it = done.rbegin(); it != done.rend(); ++it) (void)cfg.Set(it->first, it->second, "rollback");
        return ctx.reply.Error("ERR CONFIG SET failed: " + st.message());
      }
      done.emplace_back(name, old);
    }
    return ctx.reply.Ok();
  }
  if (sub == "rewrite" && a.size() == 2) {
    std::string err = ctx.services.RewriteConfig();
    if (!err.empty()) return ctx.reply.Error(err);
    return ctx.reply.Ok();
  }
  if (sub == "resetstat" && a.size() == 2) {
    ctx.services.ResetStats();
    return ctx.reply.Ok();
  }
  ctx.reply.Error("ERR unknown subcommand or wrong number of arguments for '" + a[1] + "'. Try CONFIG HELP.");
}

bool KnownClientType(const std::string& t) {
  return t == "normal" || t == "pubsub" || t == "master" || t == "replica" || t == "slave";
}

// The CLIENT LIST/KILL type of a registered connection (replication links
// are not registered: they are "replica" or "master").
std::string ClientType(const ClientState& c) { return c.subscribed() ? "pubsub" : "normal"; }

std::string ClientLine(const ClientState& c, int64_t now_ms) {
  std::string name;
  std::string lib_name, lib_ver;
  {
    std::lock_guard<std::mutex> l(c.mu);
    name = c.name;
    lib_name = c.lib_name;
    lib_ver = c.lib_ver;
  }
  const Spec* last = c.last_cmd.load(std::memory_order_relaxed);
  std::string cmd = last ? last->name : "NULL";
  size_t qbuf = c.qbuf, omem = c.omem;
  return "id=" + std::to_string(c.id) + " addr=" + c.addr + " laddr=" + c.laddr + " fd=-1 name=" + name +
         " age=" + std::to_string((now_ms - c.created_ms) / 1000) +
         " idle=" + std::to_string((now_ms - c.last_active_ms) / 1000) + " flags=" +
         (c.in_multi ? "x" : c.subscribed() ? "P" : "N") + " db=0 sub=" + std::to_string(c.sub_count.load()) +
         " psub=" + std::to_string(c.psub_count.load()) + " ssub=0 multi=" + (c.in_multi ? std::to_string(c.queued_count.load()) : "-1") +
         " qbuf=" + std::to_string(qbuf) + " qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=" +
         std::to_string(omem) + " tot-mem=" + std::to_string(qbuf + omem) + " events=r cmd=" + cmd +
         " user=default redir=-1 resp=" + std::to_string(c.protocol.load()) + " lib-name=" + lib_name +
         " lib-ver=" + lib_ver + "\n";
}

void Client(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  if (sub == "id" && a.size() == 2) return ctx.reply.Integer(static_cast<int64_t>(ctx.client->id));
  if (sub == "setname" && a.size() == 3) {
    if (!ValidClientName(a[2])) {
      return ctx.reply.Error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    SetName(ctx, a[2]);
    return ctx.reply.Ok();
  }
  if (sub == "getname" && a.size() == 2) {
    std::lock_guard<std::mutex> l(ctx.client->mu);
    if (ctx.client->name.empty()) ctx.reply.Null();
    else ctx.reply.Bulk(ctx.client->name);
    return;
  }
  if (sub == "setinfo" && a.size() == 4) {
    // As Redis 7.2: LIB-NAME or LIB-VER, a value without spaces or newlines.
    std::string attr = ToLower(a[2]);
    if (attr != "lib-name" && attr != "lib-ver") {
      return ctx.reply.Error("ERR Unrecognized option '" + std::string(a[2]) + "' (CLIENT SETINFO takes LIB-NAME or LIB-VER)");
    }
    if (!ValidClientName(a[3])) {
      return ctx.reply.Error("ERR " + attr + " cannot contain spaces, newlines or special characters.");
    }
    std::lock_guard<std::mutex> l(ctx.client->mu);
    (attr == "lib-name" ? ctx.client->lib_name : ctx.client->lib_ver) = std::string(a[3]);
    return ctx.reply.Ok();
  }
  if (sub == "info" && a.size() == 2) return ctx.reply.Verbatim(ClientLine(*ctx.client, ctx.now_ms));
  if (sub == "list") {
    std::set<uint64_t> ids;
    std::string type;
    for (size_t i = 2; i < a.size(); i++) {
      if (EqualsIgnoreCase(a[i], "type") && i + 1 < a.size()) {
        type = ToLower(a[++i]);
        if (!KnownClientType(type)) return ctx.reply.Error("ERR Unknown client type '" + a[i] + "'");
      } else if (EqualsIgnoreCase(a[i], "id")) {
        for (i++; i < a.size(); i++) {
          int64_t id;
          if (!ParseInt64(a[i], &id) || id <= 0) return ctx.reply.Error("ERR Invalid client ID");
          ids.insert(static_cast<uint64_t>(id));
        }
      } else {
        return ctx.reply.Error(kErrSyntax);
      }
    }
    std::string out;
    for (const auto& c : ctx.services.clients().Snapshot()) {
      // Replica links and the link to a primary are not listed here.
      if (!type.empty() && type != ClientType(*c)) continue;
      if (ids.empty() || ids.count(c->id)) out += ClientLine(*c, ctx.now_ms);
    }
    return ctx.reply.Verbatim(out);
  }
  if (sub == "kill" && a.size() >= 3) {
    bool old_form = a.size() == 3;
    std::string addr, laddr, type;
    uint64_t id = 0;
    bool skipme = true;
    if (old_form) {
      addr = a[2];
    } else {
      if (a.size() % 2 != 0) return ctx.reply.Error(kErrSyntax);
      for (size_t i = 2; i + 1 < a.size(); i += 2) {
        std::string f = ToLower(a[i]);
        if (f == "addr") addr = a[i + 1];
        else if (f == "laddr") laddr = a[i + 1];
        else if (f == "type") type = ToLower(a[i + 1]);
        else if (f == "skipme") skipme = !EqualsIgnoreCase(a[i + 1], "no");
        else if (f == "user") { /* one user: default */ }
        else if (f == "id") {
          int64_t v;
          if (!ParseInt64(a[i + 1], &v) || v <= 0) return ctx.reply.Error("ERR client-id should be greater than 0");
          id = static_cast<uint64_t>(v);
        } else {
          return ctx.reply.Error(kErrSyntax);
        }
      }
      if (!type.empty() && !KnownClientType(type)) return ctx.reply.Error("ERR Unknown client type '" + type + "'");
    }
    int64_t killed = 0;
    // Replication links live outside the client registry: replication
    // closes them (the other side reconnects and resumes with PSYNC).
    if ((type == "replica" || type == "slave") && addr.empty() && laddr.empty() && id == 0) {
      killed += ctx.services.replication().KillReplicas();
    } else if (type == "master" && addr.empty() && laddr.empty() && id == 0) {
      killed += ctx.services.replication().KillMasterLink();
    }
    for (const auto& c : ctx.services.clients().Snapshot()) {
      if (!addr.empty() && c->addr != addr) continue;
      if (!laddr.empty() && c->laddr != laddr) continue;
      if (id != 0 && c->id != id) continue;
      if (!type.empty() && type != ClientType(*c)) continue;
      if (c->id == ctx.client->id) {
        if (!old_form && skipme) continue;
        c->close_after_reply = true;
        killed++;
        continue;
      }
      if (c->kill) c->kill();
      killed++;
    }
    if (old_form) {
      if (killed == 0) return ctx.reply.Error("ERR No such client");
      return ctx.reply.Ok();
    }
    return ctx.reply.Integer(killed);
  }
  ctx.reply.Error("ERR unknown subcommand or wrong number of arguments for '" + a[1] + "'. Try CLIENT HELP.");
}

void Debug(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  if (sub == "digest" && a.size() == 2) {
    storage::KeyDigest d;
    Status loaded;
    StoredValue full;
    Status st = ctx.view.Scan("", [&](std::string_view k, const StoredValue& v) {
      if (v.ExpiredAt(ctx.now_ms)) return true;
      if (!v.in_blob) {
        d.Add(k, v);
        return true;
      }
      full = v;
      loaded = ctx.view.Load(k, &full, /*fill_cache=*/false);  // every value once: not a client's read
      if (loaded.ok()) d.Add(k, full);
      return loaded.ok();
    });
    if (st.ok()) st = loaded;
    if (!st.ok()) return ctx.ReplyStatus(st);
    return ctx.reply.Bulk(d.Finish());
  }
  if (sub == "digest-value") {
    ctx.reply.ArrayHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); i++) {
      StoredValue v;
      bool found;
      Status st = ctx.view.Get(a[i], &v, &found);
      if (!st.ok() || !found || v.ExpiredAt(ctx.now_ms)) {
        ctx.reply.Bulk(std::string(40, '0'));
        continue;
      }
      ctx.reply.Bulk(storage::KeyDigest::OfValue(v));
    }
    return;
  }
  // Everything below can stall the server: gated as Redis gates DEBUG.
  std::string allowed = ctx.services.config().GetString("enable-debug-command");
  if (allowed == "no" || (allowed == "local" && !ctx.client->local)) {
    return ctx.reply.Error(
        "ERR DEBUG " + sub.substr(0, 32) +
        " not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local "
        "connection, otherwise you need to set this option in the configuration file (enable-debug-command: yes "
        "or local), and then restart the server. DEBUG DIGEST and DIGEST-VALUE are always allowed.");
  }
  if (sub == "sleep" && a.size() == 3) {
    double secs;
    if (!ParseDouble(a[2], &secs) || secs < 0 || secs > 3600) return ctx.reply.Error(kErrNotFloat);
    std::this_thread::sleep_for(std::chrono::duration<double>(secs));  // blocking is the point
    return ctx.reply.Ok();
  }
  ctx.reply.Error("ERR unknown subcommand '" + a[1] + "'. levee's DEBUG knows DIGEST, DIGEST-VALUE and SLEEP.");
}

// levee runs no scripts. Sentinel sends SCRIPT KILL to a server that
// answers BUSY; it gets Redis' answer for "nothing running".
void Script(CommandContext& ctx, std::vector<std::string>& a) {
  std::string sub = ToLower(a[1]);
  if (sub == "kill" && a.size() == 2) return ctx.reply.Error("NOTBUSY No scripts in execution right now.");
  if (sub == "flush" && a.size() <= 3) return ctx.reply.Ok();
  if (sub == "exists" && a.size() >= 3) {
    ctx.reply.ArrayHeader(a.size() - 2);
    for (size_t i = 2; i < a.size(); i++) ctx.reply.Integer(0);
    return;
  }
  ctx.reply.Error("ERR levee does not run Lua scripts: SCRIPT " + a[1] + " is not supported (KILL, FLUSH and EXISTS are)");
}

}  // namespace

void RegisterServerFamily(CommandTable* t) {
  const uint32_t F = kFast, A = kAdmin, NA = kNoAuth, C = kConnection;
  auto add = [t](std::string name, int arity, uint32_t flags, std::string group, std::string summary, Handler h) {
    t->Add(Spec{std::move(name), arity, flags, 0, 0, 0, std::move(group), std::move(summary), std::move(h)});
  };
  add("ping", -1, F | kPubSubContext, "connection", "Returns PONG, or the argument.", Ping);
  add("echo", 2, F, "connection", "Returns the argument.", Echo);
  add("quit", -1, F | NA | C | kPubSubContext, "connection", "Closes the connection.", Quit);
  add("auth", -2, F | NA | C, "connection", "Authenticates the connection.", Auth);
  add("hello", -1, F | NA | C, "connection", "Chooses the protocol version and authenticates.", Hello);
  add("select", 2, F | C, "connection", "Selects the database (levee has database 0 only).", Select);
  add("client", -2, A | C | kDangerous, "connection", "Inspects and manages client connections.", Client);
  add("time", 1, F, "server", "Returns the server time.", Time);
  add("shutdown", -1, A | kNoQueue | kDangerous, "server", "Stops the server gracefully, as SIGTERM does.", Shutdown);
  add("info", -1, 0, "server", "Returns information and statistics about the server.", Info);
  add("command", -1, 0, "server", "Returns information about commands.", Command);
  add("config", -2, A | kDangerous, "server", "Reads and changes settings at run time.", Config);
  // On the writer thread, as Redis runs DEBUG on its main thread: DIGEST sees
  // a state between groups, and SLEEP stalls writes (liveness tests).
  add("script", -2, 0, "scripting", "SCRIPT KILL answers NOTBUSY: levee runs no scripts.", Script);
  add("backup", -2, A | kDangerous, "server", "Checkpoints for `levee backup` (OPEN, READ, DIGEST, CLOSE), FREEZE/THAW, RUN, STATUS.",
      [](CommandContext& ctx, std::vector<std::string>& a) { ctx.services.backups().Handle(a, ctx.reply); });
  add("debug", -2, A | kOnWriter | kDangerous, "server", "Debugging commands (DIGEST, DIGEST-VALUE, SLEEP).", Debug);
}

}  // namespace levee::commands
