// COMMAND DOCS: each command's syntax, as data, turned into the argument
// tree Redis reports (what redis-cli renders as hints while you type).
//
// Syntax strings use Redis' documentation notation: UPPER words are tokens
// (alone: a pure token; before a lower word: that argument's token), lower
// words are arguments, [ ] optional, a|b one of, "..." after an item or at
// the end of a [ ] group: repeated.
#include <cctype>
#include <map>
#include <set>

#include "commands/args.h"
#include "commands/docs.h"

namespace levee::commands {
namespace {

const std::map<std::string, std::string, std::less<>>& SyntaxTable() {
  static const std::map<std::string, std::string, std::less<>> table = {
      {"get", "key"},
      {"set", "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"},
      {"setnx", "key value"},
      {"setex", "key seconds value"},
      {"psetex", "key milliseconds value"},
      {"getset", "key value"},
      {"getdel", "key"},
      {"getex", "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]"},
      {"mget", "key [key ...]"},
      {"mset", "key value [key value ...]"},
      {"msetnx", "key value [key value ...]"},
      {"append", "key value"},
      {"strlen", "key"},
      {"incr", "key"},
      {"decr", "key"},
      {"incrby", "key increment"},
      {"decrby", "key decrement"},
      {"incrbyfloat", "key increment"},
      {"getrange", "key start end"},
      {"substr", "key start end"},
      {"setrange", "key offset value"},
      {"del", "key [key ...]"},
      {"unlink", "key [key ...]"},
      {"exists", "key [key ...]"},
      {"expire", "key seconds [NX|XX|GT|LT]"},
      {"pexpire", "key milliseconds [NX|XX|GT|LT]"},
      {"expireat", "key unix-time-seconds [NX|XX|GT|LT]"},
      {"pexpireat", "key unix-time-milliseconds [NX|XX|GT|LT]"},
      {"ttl", "key"},
      {"pttl", "key"},
      {"expiretime", "key"},
      {"pexpiretime", "key"},
      {"persist", "key"},
      {"type", "key"},
      {"rename", "key newkey"},
      {"renamenx", "key newkey"},
      {"keys", "pattern"},
      {"scan", "cursor [MATCH pattern] [COUNT count] [TYPE type]"},
      {"dbsize", ""},
      {"flushdb", "[ASYNC|SYNC]"},
      {"flushall", "[ASYNC|SYNC]"},
      {"pkscanrange", "type start end [MATCH pattern] [LIMIT limit]"},
      {"pkrscanrange", "type start end [MATCH pattern] [LIMIT limit]"},
      {"ping", "[message]"},
      {"echo", "message"},
      {"quit", ""},
      {"auth", "[username] password"},
      {"hello", "[protover [AUTH username password] [SETNAME clientname]]"},
      {"select", "index"},
      {"client", "subcommand [argument ...]"},
      {"time", ""},
      {"shutdown", "[NOSAVE | SAVE] [NOW] [FORCE] [ABORT]"},
      {"info", "[section ...]"},
      {"command", "[subcommand [argument ...]]"},
      {"config", "subcommand [argument ...]"},
      {"debug", "subcommand [argument ...]"},
      {"backup", "subcommand [argument ...]"},
      {"slowlog", "subcommand [argument ...]"},
      {"multi", ""},
      {"exec", ""},
      {"discard", ""},
      {"watch", "key [key ...]"},
      {"unwatch", ""},
      {"replicaof", "host port"},
      {"slaveof", "host port"},
      {"role", ""},
      {"replconf", "[option value ...]"},
      {"psync", "replicationid offset"},
      {"sync", ""},
      {"wait", "numreplicas timeout"},
      {"subscribe", "channel [channel ...]"},
      {"psubscribe", "pattern [pattern ...]"},
      {"unsubscribe", "[channel [channel ...]]"},
      {"punsubscribe", "[pattern [pattern ...]]"},
      {"publish", "channel message"},
      {"pubsub", "subcommand [argument ...]"},
      {"script", "subcommand [argument ...]"},
  };
  return table;
}

std::vector<std::string> Tokenize(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (char c : s) {
    if (c == ' ') {
      flush();
    } else if (c == '[' || c == ']' || c == '|') {
      flush();
      out.emplace_back(1, c);
    } else {
      cur.push_back(c);
    }
  }
  flush();
  return out;
}

bool IsUpper(const std::string& w) {
  bool any = false;
  for (char c : w) {
    if (std::islower(static_cast<unsigned char>(c))) return false;
    if (std::isupper(static_cast<unsigned char>(c))) any = true;
  }
  return any;
}

std::string TypeOf(const std::string& name) {
  static const std::set<std::string> ints = {"seconds", "milliseconds", "unix-time-seconds", "unix-time-milliseconds",
                                             "count", "offset", "start", "end", "decrement", "index",
                                             "limit", "cursor", "protover"};
  if (name == "key" || name == "newkey") return "key";
  if (name == "increment") return "double";
  if (name == "pattern") return "pattern";
  return ints.count(name) ? "integer" : "string";
}

class Parser {
 public:
  explicit Parser(std::vector<std::string> t) : t_(std::move(t)) {}
  std::vector<DocArg> Sequence() {
    std::vector<DocArg> out;
    while (i_ < t_.size() && t_[i_] != "]" && t_[i_] != "|") {
      if (t_[i_] == "...") {  // repeats what came before
        if (!out.empty()) out.back().multiple = true;
        i_++;
        continue;
      }
      out.push_back(Alternatives());
    }
    return out;
  }

 private:
  DocArg Alternatives() {
    std::vector<DocArg> alts{Item()};
    while (i_ < t_.size() && t_[i_] == "|") {
      i_++;
      alts.push_back(Item());
    }
    if (alts.size() == 1) return alts[0];
    DocArg one{"oneof", "oneof"};
    for (auto& a : alts) a.optional = false;  // optionality belongs to the group
    one.children = std::move(alts);
    return one;
  }

  DocArg Item() {
    if (t_[i_] == "[") {
      i_++;
      std::vector<DocArg> inner = Sequence();
      bool multiple = false;
      if (!inner.empty() && inner.back().multiple && inner.size() > 1) {
        inner.back().multiple = false;  // "[key value ...]": the group repeats
        multiple = true;
      }
      while (i_ < t_.size() && t_[i_] == "|") {  // "[A|B]" parsed as alternatives
        i_++;
        std::vector<DocArg> more = Sequence();
        DocArg one{"oneof", "oneof"};
        one.children.push_back(inner.size() == 1 ? inner[0] : DocArg{"block", "block", "", false, false, inner});
        for (auto& m : more) one.children.push_back(m);
        inner = {one};
      }
      if (i_ < t_.size() && t_[i_] == "]") i_++;
      DocArg out = inner.size() == 1 ? inner[0] : DocArg{"block", "block", "", false, false, inner};
      out.optional = true;
      out.multiple = out.multiple || multiple;
      return out;
    }
    std::string w = t_[i_++];
    if (IsUpper(w)) {
      std::string lower = ToLower(w);
      if (i_ < t_.size() && !IsUpper(t_[i_]) && t_[i_] != "[" && t_[i_] != "]" && t_[i_] != "|" &&
          t_[i_] != "...") {
        std::string name = t_[i_++];
        return DocArg{name, TypeOf(name), w};
      }
      return DocArg{lower, "pure-token", w};
    }
    return DocArg{w, TypeOf(w)};
  }

  std::vector<std::string> t_;
  size_t i_ = 0;
};

}  // namespace

std::vector<DocArg> CommandArguments(std::string_view command) {
  auto it = SyntaxTable().find(command);
  if (it == SyntaxTable().end()) return {};
  return Parser(Tokenize(it->second)).Sequence();
}

bool HasSyntax(std::string_view command) { return SyntaxTable().count(command) > 0; }

void ReplyArguments(resp::ReplyBuilder& r, const std::vector<DocArg>& args) {
  r.ArrayHeader(args.size());
  for (const auto& a : args) {
    size_t fields = 2 + (a.token.empty() ? 0 : 1) + (a.optional || a.multiple ? 1 : 0) + (a.children.empty() ? 0 : 1);
    r.MapHeader(fields);
    r.Bulk("name");
    r.Bulk(a.name);
    r.Bulk("type");
    r.Bulk(a.type);
    if (!a.token.empty()) {
      r.Bulk("token");
      r.Bulk(a.token);
    }
    if (a.optional || a.multiple) {
      r.Bulk("flags");
      r.SetHeader((a.optional ? 1 : 0) + (a.multiple ? 1 : 0));
      if (a.optional) r.SimpleString("optional");
      if (a.multiple) r.SimpleString("multiple");
    }
    if (!a.children.empty()) {
      r.Bulk("arguments");
      ReplyArguments(r, a.children);
    }
  }
}

}  // namespace levee::commands
