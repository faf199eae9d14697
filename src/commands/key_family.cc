// Generic key commands: deletion, expiry, renaming, iteration, ordered ranges.
#include <charconv>
#include <climits>

#include "commands/args.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "storage/write_group.h"

namespace levee::commands {
namespace {

using storage::StoredValue;

void Del(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); i++) {
    StoredValue v;
    bool found;
    if (!ctx.Lookup(a[i], &v, &found)) return;
    bool deleted;
    // An expired key is deleted too (it is still stored) but not counted.
    Status st = ctx.group->Delete(a[i], &deleted);
    if (!st.ok()) return ctx.ReplyStatus(st);
    if (found) n++;
  }
  ctx.reply.Integer(n);
}

void Exists(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); i++) {
    StoredValue v;
    bool found;
    if (!ctx.Lookup(a[i], &v, &found)) return;
    if (found) n++;
  }
  ctx.reply.Integer(n);
}

// EXPIRE family. unit_ms: 1000 for seconds; absolute: the argument is a time.
void Expire(CommandContext& ctx, std::vector<std::string>& a, int64_t unit_ms, bool absolute) {
  int64_t n;
  if (!ParseInt64(a[2], &n)) {
    ctx.reply.Error(kErrNotInteger);
    return;
  }
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "nx")) nx = true;
    else if (EqualsIgnoreCase(a[i], "xx")) xx = true;
    else if (EqualsIgnoreCase(a[i], "gt")) gt = true;
    else if (EqualsIgnoreCase(a[i], "lt")) lt = true;
    else {
      ctx.reply.Error("ERR Unsupported option " + a[i]);
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    ctx.reply.Error("ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if (gt && lt) {
    ctx.reply.Error("ERR GT and LT options at the same time are not compatible");
    return;
  }
  std::string cmd = ToLower(a[0]);
  if ((n > 0 && n > INT64_MAX / unit_ms) || (n < 0 && n < INT64_MIN / unit_ms)) {
    ctx.reply.Error("ERR invalid expire time in '" + cmd + "' command");
    return;
  }
  int64_t at = n * unit_ms;
  if (!absolute) {
    if ((at > 0 && at > INT64_MAX - ctx.now_ms)) {
      ctx.reply.Error("ERR invalid expire time in '" + cmd + "' command");
      return;
    }
    at += ctx.now_ms;
  }
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ctx.Lookup(a[1], &v, &found)) return;
  if (!found) {
    ctx.reply.Integer(0);
    return;
  }
  // A missing TTL counts as infinite for GT/LT, as in Redis.
  if ((nx && v.HasExpiry()) || (xx && !v.HasExpiry()) || (gt && (!v.HasExpiry() || at <= v.expire_at_ms)) ||
      (lt && v.HasExpiry() && at >= v.expire_at_ms)) {
    ctx.reply.Integer(0);
    return;
  }
  Status st;
  if (at <= ctx.now_ms) {
    st = ctx.group->Delete(a[1], nullptr);
  } else {
    v.expire_at_ms = at;
    st = ctx.group->Put(a[1], v);
  }
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.Integer(1);
}

// TTL/PTTL (remaining) and EXPIRETIME/PEXPIRETIME (absolute).
void Ttl(CommandContext& ctx, std::vector<std::string>& a, bool millis, bool absolute) {
  StoredValue v;
  bool found;
  if (!ctx.Lookup(a[1], &v, &found)) return;
  if (!found) return ctx.reply.Integer(-2);
  if (!v.HasExpiry()) return ctx.reply.Integer(-1);
  if (absolute) return ctx.reply.Integer(millis ? v.expire_at_ms : v.expire_at_ms / 1000);
  int64_t left = std::max<int64_t>(0, v.expire_at_ms - ctx.now_ms);
  ctx.reply.Integer(millis ? left : (left + 500) / 1000);
}

void Persist(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ctx.Lookup(a[1], &v, &found)) return;
  if (!found || !v.HasExpiry()) return ctx.reply.Integer(0);
  v.expire_at_ms = 0;
  Status st = ctx.group->Put(a[1], v);
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.Integer(1);
}

void Type(CommandContext& ctx, std::vector<std::string>& a) {
  StoredValue v;
  bool found;
  if (!ctx.Lookup(a[1], &v, &found)) return;
  ctx.reply.SimpleString(found ? "string" : "none");
}

void Rename(CommandContext& ctx, std::vector<std::string>& a, bool nx) {
  if (!ctx.Writer()) return;
  StoredValue v, dst;
  bool found, dst_found;
  if (!ctx.Lookup(a[1], &v, &found)) return;
  if (!found) return ctx.reply.Error("ERR no such key");
  if (!ctx.Lookup(a[2], &dst, &dst_found)) return;
  if (nx && dst_found) return ctx.reply.Integer(0);
  if (a[1] != a[2]) {
    Status st = ctx.group->Delete(a[1], nullptr);
    if (st.ok()) st = ctx.group->Put(a[2], v);
    if (!st.ok()) return ctx.ReplyStatus(st);
  } else if (nx) {
    return ctx.reply.Integer(0);
  }
  if (nx) ctx.reply.Integer(1);
  else ctx.reply.Ok();
}

// The literal prefix of a glob pattern: every key it matches starts with it.
std::string LiteralPrefix(std::string_view pattern) {
  std::string p;
  for (size_t i = 0; i < pattern.size(); i++) {
    char c = pattern[i];
    if (c == '*' || c == '?' || c == '[') break;
    if (c == '\\') {
      if (i + 1 >= pattern.size()) break;
      c = pattern[++i];
    }
    p.push_back(c);
  }
  return p;
}

void Keys(CommandContext& ctx, std::vector<std::string>& a) {
  const std::string& pattern = a[1];
  std::string prefix = LiteralPrefix(pattern);
  bool match_all = pattern == "*";
  std::vector<std::string> out;
  Status st = ctx.view.Scan(prefix, [&](std::string_view k, const StoredValue& v) {
    if (k.substr(0, prefix.size()) != prefix) return false;  // past the prefix: done
    if (!v.ExpiredAt(ctx.now_ms) && (match_all || GlobMatch(pattern, k))) out.emplace_back(k);
    return true;
  });
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.ArrayHeader(out.size());
  for (const auto& k : out) ctx.reply.Bulk(k);
}

void Scan(CommandContext& ctx, std::vector<std::string>& a) {
  uint64_t cursor;
  {
    int64_t c;
    // Cursors are unsigned 64-bit integers in Redis.
    auto [p, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), cursor);
    if (ec != std::errc() || p != a[1].data() + a[1].size()) return ctx.reply.Error("ERR invalid cursor");
    (void)c;
  }
  std::string pattern;
  int64_t count = 10;
  std::string type;
  for (size_t i = 2; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "match") && i + 1 < a.size()) {
      pattern = a[++i];
    } else if (EqualsIgnoreCase(a[i], "count") && i + 1 < a.size()) {
      if (!ParseInt64(a[++i], &count)) return ctx.reply.Error(kErrNotInteger);
      if (count < 1) return ctx.reply.Error(kErrSyntax);
    } else if (EqualsIgnoreCase(a[i], "type") && i + 1 < a.size()) {
      type = ToLower(a[++i]);
    } else {
      return ctx.reply.Error(kErrSyntax);
    }
  }
  std::string start;
  if (cursor != 0 && !ctx.services.LoadCursor(cursor, &start)) {
    return ctx.reply.Error("ERR invalid cursor: it is unknown or has expired; start a new SCAN at 0");
  }
  std::string prefix = pattern.empty() ? "" : LiteralPrefix(pattern);
  if (start < prefix) start = prefix;
  std::vector<std::string> out;
  int64_t examined = 0;
  std::string next;
  bool more = false;
  Status st = ctx.view.Scan(start, [&](std::string_view k, const StoredValue& v) {
    if (!prefix.empty() && k.substr(0, prefix.size()) != prefix) return false;
    if (examined >= count) {
      next.assign(k);
      more = true;
      return false;
    }
    examined++;
    if (v.ExpiredAt(ctx.now_ms)) return true;
    if (!pattern.empty() && !GlobMatch(pattern, k)) return true;
    if (!type.empty() && type != "string") return true;
    out.emplace_back(k);
    return true;
  });
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.ArrayHeader(2);
  ctx.reply.Bulk(more ? std::to_string(ctx.services.SaveCursor(std::move(next))) : "0");
  ctx.reply.ArrayHeader(out.size());
  for (const auto& k : out) ctx.reply.Bulk(k);
}

void DbSize(CommandContext& ctx, std::vector<std::string>&) {
  if (ctx.group == nullptr) ctx.services.SettleKeyCount();  // not on the writer: it would wait on itself
  ctx.reply.Integer(static_cast<int64_t>(ctx.view.KeyCount()));
}

void Flush(CommandContext& ctx, std::vector<std::string>& a) {
  if (a.size() > 2 || (a.size() == 2 && !EqualsIgnoreCase(a[1], "sync") && !EqualsIgnoreCase(a[1], "async"))) {
    return ctx.reply.Error(kErrSyntax);
  }
  if (!ctx.Writer()) return;
  Status st = ctx.group->FlushAll();
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.Ok();
}

// PKSCANRANGE / PKRSCANRANGE type start end [MATCH p] [LIMIT n], as Pika:
// keys in [start, end] (reverse: [end, start] walked downwards), empty bound
// = unbounded; reply [next_key, [keys]] or [next_key, [k, v, ...]].
void PkScanRange(CommandContext& ctx, std::vector<std::string>& a, bool reverse) {
  std::string type = ToLower(a[1]);
  bool with_values;
  if (type == "string") with_values = false;
  else if (type == "string_with_value") with_values = true;
  else if (type == "hash" || type == "list" || type == "set" || type == "zset") {
    // levee stores strings only so far: such a range is empty.
    with_values = false;
  } else {
    return ctx.reply.Error("ERR syntax error: type must be string, string_with_value, hash, list, set or zset");
  }
  bool strings = type == "string" || type == "string_with_value";
  const std::string& start = a[2];
  const std::string& end = a[3];
  std::string pattern = "*";
  int64_t limit = 10;
  for (size_t i = 4; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "match") && i + 1 < a.size()) {
      pattern = a[++i];
    } else if (EqualsIgnoreCase(a[i], "limit") && i + 1 < a.size()) {
      if (!ParseInt64(a[++i], &limit) || limit <= 0) return ctx.reply.Error(kErrNotInteger);
    } else {
      return ctx.reply.Error(kErrSyntax);
    }
  }
  if (!start.empty() && !end.empty() && (reverse ? start < end : start > end)) {
    return ctx.reply.Error("ERR error in given range");
  }
  std::vector<std::pair<std::string, std::string>> out;
  std::string next;
  Status loaded;
  auto visit = [&](std::string_view k, const StoredValue& v) {
    if (!end.empty() && (reverse ? k < end : k > end)) return false;
    if (v.ExpiredAt(ctx.now_ms) || !GlobMatch(pattern, k)) return true;
    if (static_cast<int64_t>(out.size()) >= limit) {
      next.assign(k);
      return false;
    }
    if (with_values && v.in_blob) {
      StoredValue full = v;
      loaded = ctx.view.Load(k, &full);
      if (!loaded.ok()) return false;
      out.emplace_back(std::string(k), std::move(full.payload));
      return true;
    }
    out.emplace_back(std::string(k), with_values ? v.payload : std::string());
    return true;
  };
  Status st = strings ? (reverse ? ctx.view.ScanReverse(start, visit) : ctx.view.Scan(start, visit)) : Status::OK();
  if (st.ok()) st = loaded;
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.ArrayHeader(2);
  ctx.reply.Bulk(next);
  ctx.reply.ArrayHeader(out.size() * (with_values ? 2 : 1));
  for (const auto& [k, v] : out) {
    ctx.reply.Bulk(k);
    if (with_values) ctx.reply.Bulk(v);
  }
}

}  // namespace

void RegisterKeyFamily(CommandTable* t) {
  const uint32_t W = kWrite, R = kReadOnly, F = kFast;
  auto add = [t](std::string name, int arity, uint32_t flags, int fk, int lk, int step, std::string summary,
                 Handler h) {
    t->Add(Spec{std::move(name), arity, flags, fk, lk, step, "generic", std::move(summary), std::move(h)});
  };
  add("del", -2, W | kFreesSpace, 1, -1, 1, "Deletes keys.", Del);
  add("unlink", -2, W | F | kFreesSpace, 1, -1, 1, "Deletes keys.", Del);
  add("exists", -2, R | F, 1, -1, 1, "Counts how many of the keys exist.", Exists);
  add("expire", -3, W | F, 1, 1, 1, "Sets a key's time to live in seconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Expire(c, a, 1000, false); });
  add("pexpire", -3, W | F, 1, 1, 1, "Sets a key's time to live in milliseconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Expire(c, a, 1, false); });
  add("expireat", -3, W | F, 1, 1, 1, "Sets a key's expiry as a Unix time in seconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Expire(c, a, 1000, true); });
  add("pexpireat", -3, W | F, 1, 1, 1, "Sets a key's expiry as a Unix time in milliseconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Expire(c, a, 1, true); });
  add("ttl", 2, R | F, 1, 1, 1, "Returns a key's time to live in seconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Ttl(c, a, false, false); });
  add("pttl", 2, R | F, 1, 1, 1, "Returns a key's time to live in milliseconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Ttl(c, a, true, false); });
  add("expiretime", 2, R | F, 1, 1, 1, "Returns a key's expiry as a Unix time in seconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Ttl(c, a, false, true); });
  add("pexpiretime", 2, R | F, 1, 1, 1, "Returns a key's expiry as a Unix time in milliseconds.",
      [](CommandContext& c, std::vector<std::string>& a) { Ttl(c, a, true, true); });
  add("persist", 2, W | F, 1, 1, 1, "Removes a key's expiry.", Persist);
  add("type", 2, R | F, 1, 1, 1, "Returns the type of a key's value.", Type);
  add("rename", 3, W, 1, 2, 1, "Renames a key, overwriting the destination.",
      [](CommandContext& c, std::vector<std::string>& a) { Rename(c, a, false); });
  add("renamenx", 3, W | F, 1, 2, 1, "Renames a key only when the new name does not exist.",
      [](CommandContext& c, std::vector<std::string>& a) { Rename(c, a, true); });
  add("keys", 2, R | kDangerous, 0, 0, 0, "Returns all key names that match a pattern.", Keys);
  add("scan", -2, R, 0, 0, 0, "Iterates over key names in key order.", Scan);
  add("dbsize", 1, R | F, 0, 0, 0, "Returns the number of keys.", DbSize);
  add("flushdb", -1, W | kDangerous | kFreesSpace, 0, 0, 0, "Removes all keys.", Flush);
  add("flushall", -1, W | kDangerous | kFreesSpace, 0, 0, 0, "Removes all keys.", Flush);
  add("pkscanrange", -4, R, 0, 0, 0, "Returns keys in an ordered range [start, end].",
      [](CommandContext& c, std::vector<std::string>& a) { PkScanRange(c, a, false); });
  add("pkrscanrange", -4, R, 0, 0, 0, "Returns keys in an ordered range, walking downwards from start to end.",
      [](CommandContext& c, std::vector<std::string>& a) { PkScanRange(c, a, true); });
}

}  // namespace levee::commands
