// String commands: GET/SET and friends, counters, ranges.
#include <climits>
#include <cmath>
#include <cstdio>

#include "commands/args.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "common/config.h"
#include "storage/write_group.h"

namespace levee::commands {
namespace {

using storage::StoredValue;

constexpr std::string_view kErrOverflow = "ERR increment or decrement would overflow";

// Reads the string at key; false when the reply has been written (error).
bool ReadString(CommandContext& ctx, std::string_view key, StoredValue* v, bool* found) {
  return ctx.Lookup(key, v, found);
}

bool Store(CommandContext& ctx, std::string_view key, const StoredValue& v) {
  Status st = ctx.group->Put(key, v);
  if (!st.ok()) {
    ctx.ReplyStatus(st);
    return false;
  }
  return true;
}

int64_t MaxStringSize(CommandContext& ctx) { return ctx.services.config().GetInt("proto-max-bulk-len"); }

// Parses an expiry option value into an absolute time; false with a reply on error.
bool ParseExpiry(CommandContext& ctx, std::string_view cmd, std::string_view unit, std::string_view arg,
                 int64_t* at_ms) {
  int64_t n;
  if (!ParseInt64(arg, &n)) {
    ctx.reply.Error(kErrNotInteger);
    return false;
  }
  bool seconds = EqualsIgnoreCase(unit, "ex") || EqualsIgnoreCase(unit, "exat");
  bool absolute = EqualsIgnoreCase(unit, "exat") || EqualsIgnoreCase(unit, "pxat");
  if (n <= 0 || (seconds && n > INT64_MAX / 1000)) {
    ctx.reply.Error("ERR invalid expire time in '" + ToLower(cmd) + "' command");
    return false;
  }
  int64_t ms = seconds ? n * 1000 : n;
  if (!absolute) {
    if (ms > INT64_MAX - ctx.now_ms) {
      ctx.reply.Error("ERR invalid expire time in '" + ToLower(cmd) + "' command");
      return false;
    }
    ms += ctx.now_ms;
  }
  *at_ms = ms;
  return true;
}

void Get(CommandContext& ctx, std::vector<std::string>& a) {
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  if (found) ctx.reply.Bulk(v.payload);
  else ctx.reply.Null();
}

void Set(CommandContext& ctx, std::vector<std::string>& a) {
  bool nx = false, xx = false, get = false, keepttl = false;
  int64_t expire_at = 0;
  bool have_expiry = false;
  for (size_t i = 3; i < a.size(); i++) {
    const std::string& o = a[i];
    if (EqualsIgnoreCase(o, "nx") && !xx) nx = true;
    else if (EqualsIgnoreCase(o, "xx") && !nx) xx = true;
    else if (EqualsIgnoreCase(o, "get")) get = true;
    else if (EqualsIgnoreCase(o, "keepttl") && !have_expiry) keepttl = true;
    else if ((EqualsIgnoreCase(o, "ex") || EqualsIgnoreCase(o, "px") || EqualsIgnoreCase(o, "exat") ||
              EqualsIgnoreCase(o, "pxat")) && !have_expiry && !keepttl && i + 1 < a.size()) {
      if (!ParseExpiry(ctx, "set", o, a[i + 1], &expire_at)) return;
      have_expiry = true;
      i++;
    } else {
      ctx.reply.Error(kErrSyntax);
      return;
    }
  }
  if (!ctx.Writer()) return;
  StoredValue old;
  bool found = false;
  if (nx || xx || get || keepttl) {
    if (!ReadString(ctx, a[1], &old, &found)) return;
  }
  bool apply = !(nx && found) && !(xx && !found);
  if (apply) {
    StoredValue v;
    v.payload = a[2];
    v.expire_at_ms = keepttl && found ? old.expire_at_ms : expire_at;
    if (!Store(ctx, a[1], v)) return;
  }
  if (get) {
    if (found) ctx.reply.Bulk(old.payload);
    else ctx.reply.Null();
  } else if (apply) {
    ctx.reply.Ok();
  } else {
    ctx.reply.Null();
  }
}

void SetNx(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  StoredValue old;
  bool found;
  if (!ReadString(ctx, a[1], &old, &found)) return;
  if (found) {
    ctx.reply.Integer(0);
    return;
  }
  StoredValue v;
  v.payload = a[2];
  if (Store(ctx, a[1], v)) ctx.reply.Integer(1);
}

// SETEX key seconds value / PSETEX key ms value
void SetEx(CommandContext& ctx, std::vector<std::string>& a, bool millis) {
  int64_t at;
  if (!ParseExpiry(ctx, millis ? "psetex" : "setex", millis ? "px" : "ex", a[2], &at)) return;
  if (!ctx.Writer()) return;
  StoredValue v;
  v.payload = a[3];
  v.expire_at_ms = at;
  if (Store(ctx, a[1], v)) ctx.reply.Ok();
}

void GetSet(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  StoredValue old;
  bool found;
  if (!ReadString(ctx, a[1], &old, &found)) return;
  StoredValue v;
  v.payload = a[2];
  if (!Store(ctx, a[1], v)) return;
  if (found) ctx.reply.Bulk(old.payload);
  else ctx.reply.Null();
}

void GetDel(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  StoredValue old;
  bool found;
  if (!ReadString(ctx, a[1], &old, &found)) return;
  if (!found) {
    ctx.reply.Null();
    return;
  }
  Status st = ctx.group->Delete(a[1], nullptr);
  if (!st.ok()) return ctx.ReplyStatus(st);
  ctx.reply.Bulk(old.payload);
}

void GetEx(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t at = 0;
  bool persist = false, have = false;
  for (size_t i = 2; i < a.size(); i++) {
    if (EqualsIgnoreCase(a[i], "persist") && !have) {
      persist = have = true;
    } else if ((EqualsIgnoreCase(a[i], "ex") || EqualsIgnoreCase(a[i], "px") || EqualsIgnoreCase(a[i], "exat") ||
                EqualsIgnoreCase(a[i], "pxat")) && !have && i + 1 < a.size()) {
      if (!ParseExpiry(ctx, "getex", a[i], a[i + 1], &at)) return;
      have = true;
      i++;
    } else {
      ctx.reply.Error(kErrSyntax);
      return;
    }
  }
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  if (!found) {
    ctx.reply.Null();
    return;
  }
  if (have && (persist ? v.HasExpiry() : true)) {
    StoredValue nv = v;
    nv.expire_at_ms = persist ? 0 : at;
    if (!Store(ctx, a[1], nv)) return;
  }
  ctx.reply.Bulk(v.payload);
}

void MGet(CommandContext& ctx, std::vector<std::string>& a) {
  // Look everything up before replying, so an error can't leave half an array.
  std::vector<std::optional<std::string>> values;
  values.reserve(a.size() - 1);
  for (size_t i = 1; i < a.size(); i++) {
    StoredValue v;
    bool found;
    std::string scratch;
    resp::ReplyBuilder probe(&scratch, ctx.reply.protocol());
    CommandContext sub{ctx.client, ctx.services, ctx.view, ctx.group, probe, ctx.now_ms};
    if (!sub.Lookup(a[i], &v, &found)) {
      ctx.reply.buffer()->append(scratch);
      return;
    }
    if (found) values.emplace_back(std::move(v.payload));
    else values.emplace_back(std::nullopt);
  }
  ctx.reply.ArrayHeader(values.size());
  for (const auto& v : values) {
    if (v) ctx.reply.Bulk(*v);
    else ctx.reply.Null();
  }
}

void MSet(CommandContext& ctx, std::vector<std::string>& a, bool nx) {
  if (a.size() % 2 == 0) {
    ctx.reply.Error(WrongArgsError(a[0]));
    return;
  }
  if (!ctx.Writer()) return;
  if (nx) {
    for (size_t i = 1; i < a.size(); i += 2) {
      StoredValue v;
      bool found;
      if (!ReadString(ctx, a[i], &v, &found)) return;
      if (found) {
        ctx.reply.Integer(0);
        return;
      }
    }
  }
  for (size_t i = 1; i < a.size(); i += 2) {
    StoredValue v;
    v.payload = a[i + 1];
    if (!Store(ctx, a[i], v)) return;
  }
  if (nx) ctx.reply.Integer(1);
  else ctx.reply.Ok();
}

void Append(CommandContext& ctx, std::vector<std::string>& a) {
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  if (!found) v = StoredValue();
  if (static_cast<int64_t>(v.payload.size() + a[2].size()) > MaxStringSize(ctx)) {
    ctx.reply.Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    return;
  }
  v.payload.append(a[2]);
  if (Store(ctx, a[1], v)) ctx.reply.Integer(static_cast<int64_t>(v.payload.size()));
}

void StrLen(CommandContext& ctx, std::vector<std::string>& a) {
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  ctx.reply.Integer(found ? static_cast<int64_t>(v.payload.size()) : 0);
}

void IncrBy(CommandContext& ctx, std::string_view key, int64_t by) {
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ReadString(ctx, key, &v, &found)) return;
  int64_t cur = 0;
  if (found && !ParseInt64(v.payload, &cur)) {
    ctx.reply.Error(kErrNotInteger);
    return;
  }
  if (!found) v = StoredValue();
  if ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by)) {
    ctx.reply.Error(kErrOverflow);
    return;
  }
  cur += by;
  v.payload = std::to_string(cur);
  if (Store(ctx, key, v)) ctx.reply.Integer(cur);
}

void IncrByCmd(CommandContext& ctx, std::vector<std::string>& a, int sign) {
  int64_t by;
  if (!ParseInt64(a[2], &by)) {
    ctx.reply.Error(kErrNotInteger);
    return;
  }
  if (sign < 0) {
    if (by == INT64_MIN) {
      ctx.reply.Error("ERR decrement would overflow");
      return;
    }
    by = -by;
  }
  IncrBy(ctx, a[1], by);
}

std::string FormatLongDouble(long double v) {
  char buf[5120];
  int n = std::snprintf(buf, sizeof(buf), "%.17Lf", v);
  std::string s(buf, n);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

void IncrByFloat(CommandContext& ctx, std::vector<std::string>& a) {
  double by_d;
  if (!ParseDouble(a[2], &by_d)) {
    ctx.reply.Error(kErrNotFloat);
    return;
  }
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  long double cur = 0;
  if (found) {
    double d;
    if (!ParseDouble(v.payload, &d)) {
      ctx.reply.Error(kErrNotFloat);
      return;
    }
    cur = std::strtold(v.payload.c_str(), nullptr);
  } else {
    v = StoredValue();
  }
  cur += std::strtold(a[2].c_str(), nullptr);
  if (std::isnan(cur) || std::isinf(cur)) {
    ctx.reply.Error("ERR increment would produce NaN or Infinity");
    return;
  }
  v.payload = FormatLongDouble(cur);
  if (Store(ctx, a[1], v)) ctx.reply.Bulk(v.payload);
}

void GetRange(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t start, end;
  if (!ParseInt64(a[2], &start) || !ParseInt64(a[3], &end)) {
    ctx.reply.Error(kErrNotInteger);
    return;
  }
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  int64_t len = found ? static_cast<int64_t>(v.payload.size()) : 0;
  if (start < 0 && end < 0 && start > end) {
    ctx.reply.Bulk("");
    return;
  }
  if (start < 0) start = std::max<int64_t>(0, len + start);
  if (end < 0) end = std::max<int64_t>(0, len + end);
  if (end >= len) end = len - 1;
  if (len == 0 || start > end) {
    ctx.reply.Bulk("");
    return;
  }
  ctx.reply.Bulk(std::string_view(v.payload).substr(start, end - start + 1));
}

void SetRange(CommandContext& ctx, std::vector<std::string>& a) {
  int64_t offset;
  if (!ParseInt64(a[2], &offset)) {
    ctx.reply.Error(kErrNotInteger);
    return;
  }
  if (offset < 0) {
    ctx.reply.Error("ERR offset is out of range");
    return;
  }
  if (!ctx.Writer()) return;
  StoredValue v;
  bool found;
  if (!ReadString(ctx, a[1], &v, &found)) return;
  if (!found) v = StoredValue();
  if (a[3].empty()) {  // nothing to write: reply the length, create nothing
    ctx.reply.Integer(static_cast<int64_t>(v.payload.size()));
    return;
  }
  if (offset + static_cast<int64_t>(a[3].size()) > MaxStringSize(ctx)) {
    ctx.reply.Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    return;
  }
  size_t need = static_cast<size_t>(offset) + a[3].size();
  if (v.payload.size() < need) v.payload.resize(need, '\0');
  v.payload.replace(static_cast<size_t>(offset), a[3].size(), a[3]);
  if (Store(ctx, a[1], v)) ctx.reply.Integer(static_cast<int64_t>(v.payload.size()));
}

}  // namespace

void RegisterStringFamily(CommandTable* t) {
  const uint32_t W = kWrite, R = kReadOnly, F = kFast;
  auto add = [t](std::string name, int arity, uint32_t flags, int fk, int lk, int step, std::string summary,
                 Handler h) {
    t->Add(Spec{std::move(name), arity, flags, fk, lk, step, "string", std::move(summary), std::move(h)});
  };
  add("get", 2, R | F, 1, 1, 1, "Returns the string value of a key.", Get);
  add("set", -3, W, 1, 1, 1, "Sets the string value of a key, with options.", Set);
  add("setnx", 3, W | F, 1, 1, 1, "Sets a key only when it does not exist.", SetNx);
  add("setex", 4, W, 1, 1, 1, "Sets a key and its expiry in seconds.",
      [](CommandContext& c, std::vector<std::string>& a) { SetEx(c, a, false); });
  add("psetex", 4, W, 1, 1, 1, "Sets a key and its expiry in milliseconds.",
      [](CommandContext& c, std::vector<std::string>& a) { SetEx(c, a, true); });
  add("getset", 3, W | F, 1, 1, 1, "Sets a key and returns its old value.", GetSet);
  add("getdel", 2, W | F | kFreesSpace, 1, 1, 1, "Returns a key's value and deletes it.", GetDel);
  add("getex", -2, W | F, 1, 1, 1, "Returns a key's value and sets or removes its expiry.", GetEx);
  add("mget", -2, R | F, 1, -1, 1, "Returns the values of several keys.", MGet);
  add("mset", -3, W, 1, -1, 2, "Sets several keys.",
      [](CommandContext& c, std::vector<std::string>& a) { MSet(c, a, false); });
  add("msetnx", -3, W, 1, -1, 2, "Sets several keys only if none of them exists.",
      [](CommandContext& c, std::vector<std::string>& a) { MSet(c, a, true); });
  add("append", 3, W, 1, 1, 1, "Appends to a key's value.", Append);
  add("strlen", 2, R | F, 1, 1, 1, "Returns the length of a key's value.", StrLen);
  add("incr", 2, W | F, 1, 1, 1, "Increments a key's integer value by one.",
      [](CommandContext& c, std::vector<std::string>& a) { IncrBy(c, a[1], 1); });
  add("decr", 2, W | F, 1, 1, 1, "Decrements a key's integer value by one.",
      [](CommandContext& c, std::vector<std::string>& a) { IncrBy(c, a[1], -1); });
  add("incrby", 3, W | F, 1, 1, 1, "Increments a key's integer value.",
      [](CommandContext& c, std::vector<std::string>& a) { IncrByCmd(c, a, 1); });
  add("decrby", 3, W | F, 1, 1, 1, "Decrements a key's integer value.",
      [](CommandContext& c, std::vector<std::string>& a) { IncrByCmd(c, a, -1); });
  add("incrbyfloat", 3, W | F, 1, 1, 1, "Increments a key's floating-point value.", IncrByFloat);
  add("getrange", 4, R, 1, 1, 1, "Returns a substring of a key's value.", GetRange);
  add("substr", 4, R, 1, 1, 1, "Returns a substring of a key's value (old name of GETRANGE).", GetRange);
  add("setrange", 4, W, 1, 1, 1, "Overwrites part of a key's value at an offset.", SetRange);
}

}  // namespace levee::commands
