#include "commands/args.h"
#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "storage/write_group.h"

namespace levee::commands {

void CommandTable::Add(Spec spec) {
  std::string key = spec.name;
  auto existing = specs_.find(key);
  spec.id = existing != specs_.end() ? existing->second.id : specs_.size();
  specs_.insert_or_assign(std::move(key), std::move(spec));
}

const Spec* CommandTable::Find(std::string_view name) const {
  char buf[32];
  if (name.size() >= sizeof(buf)) return nullptr;
  for (size_t i = 0; i < name.size(); i++) buf[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  auto it = specs_.find(std::string_view(buf, name.size()));
  return it == specs_.end() ? nullptr : &it->second;
}

Status CommandTable::Disable(std::string_view name) {
  std::string lower = ToLower(name);
  auto it = specs_.find(lower);
  if (it == specs_.end()) {
    return Status::InvalidArgument("disabled-commands names '" + std::string(name) +
                                   "', which is not a levee command (COMMAND LIST shows them)");
  }
  it->second.flags |= kDisabled;
  return Status::OK();
}

std::string DisabledError(std::string_view cmd) {
  return "ERR command '" + ToLower(cmd.substr(0, 64)) +
         "' is disabled on this server (disabled-commands); ask its operator to enable it";
}

void ClientRegistry::Add(const std::shared_ptr<ClientState>& c) {
  std::lock_guard<std::mutex> l(mu_);
  clients_[c->id] = c;
}

void ClientRegistry::Remove(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  clients_.erase(id);
}

std::vector<std::shared_ptr<ClientState>> ClientRegistry::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::shared_ptr<ClientState>> out;
  out.reserve(clients_.size());
  for (const auto& [id, c] : clients_) out.push_back(c);
  return out;
}

size_t ClientRegistry::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return clients_.size();
}

void ClientRegistry::Watch(const std::shared_ptr<ClientState>& c, const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  if (!c->watched.insert(key).second) return;
  watches_[key].push_back(c);
  watched_count_++;
}

void ClientRegistry::UnwatchAll(ClientState* c) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& key : c->watched) {
    auto it = watches_.find(key);
    if (it == watches_.end()) continue;
    auto& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(),
                           [c](const std::weak_ptr<ClientState>& w) {
                             auto s = w.lock();
                             return !s || s.get() == c;
                           }),
            v.end());
    if (v.empty()) watches_.erase(it);
    watched_count_--;
  }
  c->watched.clear();
  c->watch_dirty = false;
}

void ClientRegistry::TouchKey(std::string_view key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = watches_.find(key);
  if (it == watches_.end()) return;
  for (auto& w : it->second) {
    if (auto s = w.lock()) s->watch_dirty = true;
  }
}

void ClientRegistry::TouchAll() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [k, v] : watches_) {
    for (auto& w : v) {
      if (auto s = w.lock()) s->watch_dirty = true;
    }
  }
}

bool CommandContext::Lookup(std::string_view key, storage::StoredValue* v, bool* found) {
  Status st = view.Get(key, v, found);
  if (!st.ok()) {
    ReplyStatus(st);
    return false;
  }
  if (*found && v->ExpiredAt(now_ms)) *found = false;
  return true;
}

void CommandContext::ReplyStatus(const Status& st) {
  // The one table from engine errors to Redis error strings.
  switch (st.code()) {
    case Status::Code::kNoSpace:
      reply.Error("ERR disk full: " + st.message() + "; the write was not applied, free space and retry");
      break;
    case Status::Code::kCorruption:
      reply.Error("ERR data corruption: " + st.message());
      break;
    case Status::Code::kInvalidArgument:
      reply.Error("ERR " + st.message());
      break;
    default:
      reply.Error("ERR storage error: " + st.message());
  }
}

storage::WriteGroup* CommandContext::Writer() {
  if (group == nullptr) reply.Error("ERR internal error: write command ran outside the writer");
  return group;
}

std::string WrongArgsError(std::string_view cmd) {
  return "ERR wrong number of arguments for '" + ToLower(cmd) + "' command";
}

bool ParseInt64(std::string_view s, int64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  if (s[0] == '+') return false;
  if (s.size() > 1 && s[0] == '0') return false;  // no leading zeros, as Redis
  if (s.size() > 1 && s[0] == '-' && s[1] == '0') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseDouble(std::string_view s, double* v) {
  if (s.empty() || s.size() > 300) return false;
  if (std::isspace(static_cast<unsigned char>(s[0]))) return false;
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(str.c_str(), &end);
  if (end != str.c_str() + str.size() || errno == ERANGE || std::isnan(d)) return false;
  *v = d;
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace {
char Fold(char c, bool nocase) { return nocase ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c; }

bool GlobAt(std::string_view p, std::string_view s, bool nocase, int depth) {
  if (depth > 1000) return false;  // bound recursion on hostile patterns
  while (!p.empty()) {
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        for (size_t i = 0; i <= s.size(); i++) {
          if (GlobAt(p.substr(1), s.substr(i), nocase, depth + 1)) return true;
        }
        return false;
      }
      case '?':
        if (s.empty()) return false;
        s.remove_prefix(1);
        p.remove_prefix(1);
        break;
      case '[': {
        if (s.empty()) return false;
        p.remove_prefix(1);
        bool negate = !p.empty() && p[0] == '^';
        if (negate) p.remove_prefix(1);
        bool match = false;
        while (!p.empty() && p[0] != ']') {
          if (p[0] == '\\' && p.size() >= 2) {
            p.remove_prefix(1);
            if (Fold(p[0], nocase) == Fold(s[0], nocase)) match = true;
            p.remove_prefix(1);
          } else if (p.size() >= 3 && p[1] == '-') {
            char lo = Fold(p[0], nocase), hi = Fold(p[2], nocase), c = Fold(s[0], nocase);
            if (lo > hi) std::swap(lo, hi);
            if (c >= lo && c <= hi) match = true;
            p.remove_prefix(3);
          } else {
            if (Fold(p[0], nocase) == Fold(s[0], nocase)) match = true;
            p.remove_prefix(1);
          }
        }
        if (!p.empty()) p.remove_prefix(1);  // ']'
        if (match == negate) return false;
        s.remove_prefix(1);
        break;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (s.empty() || Fold(p[0], nocase) != Fold(s[0], nocase)) return false;
        s.remove_prefix(1);
        p.remove_prefix(1);
    }
  }
  return s.empty();
}
}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view s, bool nocase) { return GlobAt(pattern, s, nocase, 0); }

void RegisterAllCommands(CommandTable* t) {
  RegisterStringFamily(t);
  RegisterKeyFamily(t);
  RegisterServerFamily(t);
  RegisterTransactionFamily(t);
  RegisterObserveFamily(t);
  RegisterReplicationFamily(t);
  RegisterPubSubFamily(t);
}

}  // namespace levee::commands
