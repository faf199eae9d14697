#include "common/config.h"

#include <sys/stat.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/file.h"

namespace levee {
namespace {

using T = Config::Type;

std::vector<Config::Entry> MakeTable() {
  constexpr int64_t kMB = 1 << 20;
  return {
      {"port", T::kInt, "6379", 0, 65535, {}, false, "TCP port for the Redis protocol (0: pick a free one)"},
      {"bind", T::kString, "127.0.0.1", 0, 0, {}, false, "address to listen on (0.0.0.0 for all)"},
      {"http-port", T::kInt, "9379", 0, 65535, {}, false, "TCP port for /healthz and /readyz (0: pick a free one)"},
      {"data-dir", T::kString, "./levee-data", 0, 0, {}, false, "directory for the database and the write-ahead log"},
      {"fsync", T::kEnum, "everysec", 0, 0, {"always", "everysec", "no"}, true,
       "when the write-ahead log is fsynced: before every reply (always), once a second, or by the OS"},
      {"requirepass-file", T::kString, "", 0, 0, {}, false,
       "file whose first line is the password clients must AUTH with (empty: no password)"},
      {"protected-mode", T::kBool, "yes", 0, 0, {}, true,
       "with no password set, accept clients only from loopback addresses (127.0.0.0/8, ::1); others get -DENIED "
       "(as Redis). Set a password (requirepass-file) or turn this off to serve other hosts"},
      {"enable-debug-command", T::kEnum, "no", 0, 0, {"no", "local", "yes"}, false,
       "DEBUG subcommands that can stall the server (SLEEP): refused (no), allowed from loopback clients only "
       "(local), or from any client (yes). The read-only DEBUG DIGEST and DIGEST-VALUE are always allowed"},
      {"disabled-commands", T::kString, "", 0, 0, {}, false,
       "comma-separated commands this server refuses from every client (e.g. flushall,config,debug), as Redis' "
       "rename-command NAME \"\" does; replication, backups and Sentinel need their own commands left enabled"},
      {"io-threads", T::kInt, "0", 0, 256, {}, false, "network threads (0: one per usable CPU: affinity and cgroup CPU limit)"},
      {"maxclients", T::kInt, "10000", 1, 1000000, {}, true, "most client connections at once"},
      {"block-cache-mb", T::kInt, "128", 1, 1 << 20, {}, false, "LevelDB block cache size in MiB"},
      {"write-buffer-mb", T::kInt, "16", 1, 4096, {}, false, "LevelDB memtable size in MiB"},
      {"max-open-files", T::kInt, "8192", 64, 1000000, {}, false,
       "LevelDB table files kept open (each needs a file descriptor; levee raises its limit to fit)"},
      {"blob-min-bytes", T::kBytes, "1024", 0, INT64_C(1) << 32, {}, true,
       "values this large or larger are kept in blob files beside LevelDB, which then holds only a reference: "
       "compaction stops rewriting them (0: every value in LevelDB)"},
      {"blob-cache-mb", T::kInt, "auto", 0, 1 << 24, {"auto"}, false,
       "cache of blob values (blob-min-bytes or larger) in levee's memory, in MiB; new values go in as they are "
       "written. auto: a quarter of the memory levee may use (the container's limit, else the machine's), at "
       "most 16 GiB; 0: none, every read of such a value goes to the blob file"},
      {"row-cache-mb", T::kInt, "auto", 0, 1 << 24, {"auto"}, false,
       "cache of small values (and of large values' blob references) by key, in MiB: a read of a cached key "
       "skips LevelDB's lookup. Reads fill it, and writes when row-cache-on-write is on. auto: an eighth of "
       "the memory levee may use, at most 8 GiB; 0: none"},
      {"key-filter-bits-per-key", T::kInt, "10", 0, 32, {}, false,
       "a Bloom filter of every key, in levee's memory, this many bits per key (10: about 1% of absent keys "
       "still go to LevelDB): a read of a missing key and a write of a new key need no LevelDB lookup. Built "
       "by a background scan at start (until it ends, lookups go to LevelDB); 0: none"},
      {"row-cache-on-write", T::kBool, "yes", 0, 0, {}, true,
       "put each value written in the row cache as it commits (no: writes only remove their keys and reads fill "
       "it); with it, the writer also learns from the cache whether a key existed, without a LevelDB lookup"},
      {"blob-cache-on-write", T::kBool, "yes", 0, 0, {}, true,
       "put each large value in the value cache as it is written (no: only reads fill it; for write-mostly "
       "loads such as a bulk import, whose values are not read back soon)"},
      {"blob-file-mb", T::kInt, "64", 1, 4096, {}, true, "size at which a new blob file is started"},
      {"blob-gc-garbage-percent", T::kInt, "50", 1, 100, {}, true,
       "a sealed blob file whose dead records (overwritten or deleted values) reach this share is rewritten "
       "without them"},
      {"log-format", T::kEnum, "json", 0, 0, {"json", "text"}, false,
       "json: one Cloud Logging object per line; text: for people at a terminal"},
      {"log-level", T::kEnum, "info", 0, 0, {"debug", "info", "warning", "error"}, true, "least severe level logged"},
      {"proto-max-bulk-len", T::kBytes, std::to_string(512 * kMB), 1024, INT64_C(1) << 32, {}, true,
       "largest bulk string a client may send"},
      {"client-query-buffer-limit", T::kBytes, std::to_string(1024 * kMB), 1024 * 1024, INT64_C(1) << 34, {}, true,
       "most unprocessed input held for one client; past it the client is disconnected"},
      {"client-output-buffer-limit", T::kBytes, std::to_string(256 * kMB), 16 * 1024, INT64_C(1) << 34, {}, true,
       "most unsent output held for one client (one that stops reading); past it the client is disconnected"},
      {"wal-segment-mb", T::kInt, "64", 1, 4096, {}, false, "size at which a new write-ahead log segment is started"},
      {"wal-keep-segments", T::kInt, "4", 1, 1000000, {}, true,
       "closed log segments kept after LevelDB has made them redundant (for replicas and archiving)"},
      {"min-free-disk-mb", T::kInt, "64", 0, 1 << 20, {}, true,
       "writes are refused while the data directory's file system has less free space than this"},
      {"expire-keys-per-cycle", T::kInt, "500", 1, 1000000, {}, true,
       "most expired keys the background expirer deletes per 100 ms cycle"},
      {"slowlog-log-slower-than", T::kInt, "10000", -1, INT64_C(1) << 40, {}, true,
       "commands taking at least this many microseconds go to the slow log (0: all, -1: none)"},
      {"slowlog-max-len", T::kInt, "128", 0, 1000000, {}, true, "entries kept in the slow log"},
      {"liveness-timeout-ms", T::kInt, "5000", 100, 3600000, {}, true,
       "GET /healthz answers 503 when an io thread or the writer has not answered for this long"},
      {"max-write-group", T::kInt, "4096", 1, 1000000, {}, true, "most commands committed in one group"},
      // Replication (docs/formats/replication.md).
      {"replicaof", T::kString, "", 0, 0, {}, false,
       "host:port of the primary to follow at start-up (empty: start as a primary; REPLICAOF changes it at run time)"},
      {"masterauth-file", T::kString, "", 0, 0, {}, false,
       "file whose first line is the password this replica sends its primary (empty: none)"},
      {"masteruser", T::kString, "", 0, 0, {}, false, "user name this replica sends with the password (empty: AUTH <password>)"},
      {"repl-compression", T::kBool, "yes", 0, 0, {}, true,
       "ask the primary to zstd-compress the record stream (used when a block shrinks by an eighth or more)"},
      {"repl-timeout-ms", T::kInt, "10000", 500, 3600000, {}, true,
       "a link with no data (replica side) or no ack (primary side) for this long is dropped and retried"},
      {"repl-full-sync-max-bytes-per-sec", T::kBytes, "0", 0, INT64_C(1) << 40, {}, true,
       "rate limit for checkpoint files sent to a replica in a full resync (0: unlimited)"},
      {"repl-backlog-max-mb", T::kInt, "4096", 1, 1 << 24, {}, true,
       "log kept for connected or resyncing replicas beyond wal-keep-segments; past it a lagging replica needs a full resync"},
      {"min-replicas-to-write", T::kInt, "0", 0, 1000, {}, true,
       "refuse writes (NOREPLICAS) unless this many replicas acked within min-replicas-max-lag (0: off)"},
      {"min-replicas-max-lag", T::kInt, "10", 1, 3600, {}, true, "seconds since its last ack for a replica to count as good"},
      {"sync-replicas", T::kInt, "0", 0, 1000, {}, true,
       "writes to sync-class keys are answered only after this many replicas acked them (0: all writes async)"},
      {"sync-key-prefixes", T::kString, "", 0, 0, {}, true,
       "comma-separated key prefixes that are sync-class (empty: every key, when sync-replicas > 0)"},
      {"sync-timeout-ms", T::kInt, "1000", 1, 3600000, {}, true, "how long a sync-class write waits for replica acks"},
      {"sync-timeout-policy", T::kEnum, "fail", 0, 0, {"fail", "degrade"}, true,
       "after sync-timeout-ms: fail the command with an error (the write may or may not survive a failover), or degrade to async"},
      {"replica-serve-stale-data", T::kBool, "yes", 0, 0, {}, true,
       "a replica whose link is down (or that is resyncing) still answers reads with the data it has"},
      {"replica-refuse-rollback", T::kBool, "yes", 0, 0, {}, true,
       "a replica refuses a full resync from a primary that lacks records it received from an earlier primary and "
       "that hold sync-class writes (clients were told they are safe); no: take the copy and discard them, as Redis does"},
      {"replica-ready-max-lag-ms", T::kInt, "10000", 0, 3600000, {}, true,
       "/readyz on a replica is 200 only while its link is up and it is at most this far behind"},
      {"replica-priority", T::kInt, "100", 0, 1000000, {}, true,
       "for Redis Sentinel: lower is preferred for promotion, 0 never promotes (INFO slave_priority)"},
      {"replica-announce-ip", T::kString, "", 0, 0, {}, true,
       "address this replica tells its primary (and so Sentinel) to reach it at (empty: the address the primary sees)"},
      {"replica-announce-port", T::kInt, "0", 0, 65535, {}, true,
       "port this replica tells its primary to reach it at (0: its own port)"},
      // Backups (docs/formats/backup.md, docs/runbooks/backup.md).
      {"backup-repo", T::kString, "", 0, 0, {}, false,
       "repository for scheduled backups: file:///path, s3://bucket/prefix[?endpoint=..&region=..&path_style=true] "
       "or gs://bucket/prefix (empty: no scheduled backups)"},
      {"backup-key-file", T::kString, "", 0, 0, {}, false,
       "file with the repository's encryption key, 64 hex digits (`levee backup keygen`); empty: unencrypted"},
      {"backup-schedule", T::kString, "6h", 0, 0, {}, true,
       "time between scheduled backups when backup-repo is set: 30m, 6h, 1d... or off"},
      {"backup-schedule-role", T::kEnum, "any", 0, 0, {"any", "primary", "replica"}, true,
       "which servers run the schedule: any, only the primary, or only replicas (one backup stream per replicated set)"},
      {"backup-wal-archive", T::kBool, "no", 0, 0, {}, true,
       "copy the write-ahead log into backup-repo continuously (point-in-time restore); runs where backup-schedule-role says"},
      {"backup-wal-archive-interval", T::kString, "60s", 0, 0, {}, true,
       "longest time between a write and its archiving (the point-in-time restore window's trailing edge)"},
      {"backup-wal-archive-max-mb", T::kInt, "4096", 16, 1 << 24, {}, true,
       "log kept for an archive that cannot keep up; past it the log is trimmed and the archive has a gap"},
      {"backup-verify-schedule", T::kString, "24h", 0, 0, {}, true,
       "time between scheduled verifications (every object rehashed) of the newest backup, or off"},
      {"backup-keep-last", T::kInt, "7", 0, 1000000, {}, true, "retention after each scheduled backup: newest backups kept"},
      {"backup-keep-daily", T::kInt, "7", 0, 1000000, {}, true, "retention: also keep the newest backup of each of this many days"},
      {"backup-keep-weekly", T::kInt, "4", 0, 1000000, {}, true, "retention: also keep the newest backup of each of this many weeks"},
      {"backup-parallelism", T::kInt, "4", 1, 64, {}, true, "objects uploaded or downloaded at once"},
      {"backup-max-bytes-per-sec", T::kBytes, std::to_string(128 * kMB), 0, INT64_C(1) << 40, {}, true,
       "rate limit for data read by a server-side backup, so the foreground keeps its latency (0: unlimited)"},
      {"backup-cpu-priority", T::kEnum, "idle", 0, 0, {"idle", "low"}, true,
       "server-side backups, verification and log archiving run on CPU time nothing else wants (idle) or at nice 10 "
       "(low: they progress however busy the server is)"},
      {"backup-chunk-mb", T::kInt, "32", 1, 1024, {}, true,
       "files are stored in objects of at most this size (memory use is about parallelism x 2 x this)"},
      {"backup-s3-endpoint", T::kString, "", 0, 0, {}, false,
       "S3 endpoint (http[s]://host[:port]) when the repository URL has none (default: AWS, or GCS for gs://)"},
      {"backup-s3-region", T::kString, "", 0, 0, {}, false,
       "S3 region when the URL has none (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1; auto for GCS)"},
      {"backup-freeze-max-seconds", T::kInt, "300", 1, 3600, {}, true,
       "longest BACKUP FREEZE (levee backup freeze --timeout) a client may ask for; writes thaw by themselves after it"},
      {"backup-max-leases", T::kInt, "4", 1, 1000, {}, true,
       "most checkpoints lent at once to `levee backup create --server` (BACKUP OPEN); each pins the files it names"},
      {"backup-lease-max-seconds", T::kInt, "86400", 60, INT64_C(1) << 31, {}, true,
       "a lent checkpoint is dropped this long after it was taken, even while in use (an idle one after two minutes)"},
      {"backup-digest", T::kBool, "yes", 0, 0, {}, true,
       "record DEBUG DIGEST at each backup's barrier (one extra read of the data) so verify --deep can compare"},
  };
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string UnknownKeyMessage(const std::string& name, const std::string& source) {
  std::string best;
  size_t best_d = 4;
  for (const auto& e : Config::Entries()) {
    size_t d = EditDistance(name, e.name);
    if (d < best_d) {
      best_d = d;
      best = e.name;
    }
  }
  std::string msg = "unknown setting '" + name + "' in " + source;
  if (!best.empty()) return msg + "; did you mean '" + best + "'?";
  return msg + "; see levee.yaml for the list of settings";
}

}  // namespace

std::vector<std::string> SplitCommaList(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ',')) {
    while (!cur.empty() && (cur.front() == ' ' || cur.front() == '\t')) cur.erase(0, 1);
    while (!cur.empty() && (cur.back() == ' ' || cur.back() == '\t')) cur.pop_back();
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

bool ParseBytes(const std::string& in, int64_t* out) {
  std::string s = Lower(in);
  size_t i = 0;
  if (i < s.size() && s[i] == '-') return false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
  if (i == 0) return false;
  int64_t n;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, n);
  if (ec != std::errc()) return false;
  std::string unit = s.substr(i);
  int64_t mul;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k") mul = 1000;
  else if (unit == "kb") mul = 1024;
  else if (unit == "m") mul = 1000 * 1000;
  else if (unit == "mb") mul = 1024 * 1024;
  else if (unit == "g") mul = 1000 * 1000 * 1000;
  else if (unit == "gb") mul = INT64_C(1024) * 1024 * 1024;
  else return false;
  if (n > INT64_MAX / mul) return false;
  *out = n * mul;
  return true;
}

const std::vector<Config::Entry>& Config::Entries() {
  static const std::vector<Entry> table = MakeTable();
  return table;
}

const Config::Entry* Config::Find(const std::string& name) {
  for (const auto& e : Entries()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Config::Config() {
  for (const auto& e : Entries()) values_[e.name] = e.default_value;
}

Status Config::Set(const std::string& name_in, const std::string& value, const std::string& source) {
  std::string name = Lower(name_in);
  const Entry* e = Find(name);
  if (e == nullptr) return Status::InvalidArgument(UnknownKeyMessage(name_in, source));
  if (source == "CONFIG SET" && !e->mutable_at_runtime) {
    return Status::InvalidArgument("'" + name + "' can't be changed at run time; set it in levee.yaml, "
                                   "the environment or a flag and restart");
  }
  std::string v = value;
  auto bad = [&](const std::string& expected) {
    return Status::InvalidArgument("invalid value '" + value + "' for '" + name + "' (from " + source +
                                   "): expected " + expected);
  };
  switch (e->type) {
    case Type::kInt: {
      // A kInt's `allowed` words (like "auto") stand beside the numbers.
      if (std::find(e->allowed.begin(), e->allowed.end(), Lower(v)) != e->allowed.end()) {
        v = Lower(v);
        break;
      }
      int64_t n;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n < e->min || n > e->max) {
        std::string words;
        for (const auto& a : e->allowed) words += ", or " + a;
        return bad("an integer from " + std::to_string(e->min) + " to " + std::to_string(e->max) + words);
      }
      break;
    }
    case Type::kBytes: {
      int64_t n;
      if (!ParseBytes(v, &n) || n < e->min || n > e->max) {
        return bad("a size from " + std::to_string(e->min) + " to " + std::to_string(e->max) +
                   " bytes (units k, kb, m, mb, g, gb allowed)");
      }
      v = std::to_string(n);
      break;
    }
    case Type::kEnum: {
      v = Lower(v);
      if (std::find(e->allowed.begin(), e->allowed.end(), v) == e->allowed.end()) {
        std::string list;
        for (const auto& a : e->allowed) list += (list.empty() ? "" : ", ") + a;
        return bad("one of " + list);
      }
      break;
    }
    case Type::kBool: {
      v = Lower(v);
      if (v == "yes" || v == "true" || v == "1") v = "yes";
      else if (v == "no" || v == "false" || v == "0") v = "no";
      else return bad("yes or no");
      break;
    }
    case Type::kString:
      break;
  }
  std::vector<std::function<void(const std::string&)>> watchers;
  {
    std::lock_guard<std::mutex> l(mu_);
    values_[name] = v;
    auto it = watchers_.find(name);
    if (it != watchers_.end()) watchers = it->second;
  }
  for (auto& w : watchers) w(v);
  return Status::OK();
}

Status Config::LoadYamlFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument("cannot read config file " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << f.rdbuf();
  return LoadYamlText(text.str(), path);
}

Status Config::LoadYamlText(const std::string& text, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("config file " + path + " is not valid YAML: " + e.what());
  }
  if (root.IsNull()) return Status::OK();  // empty file or only comments
  if (!root.IsMap()) {
    return Status::InvalidArgument("config file " + path + " must be a mapping of setting: value");
  }
  // yaml-cpp throws on a conversion it cannot make (a key that is itself a
  // list or mapping, an alias to one): each is a clear error, never an
  // exception out of the loader.
  try {
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) {
        return Status::InvalidArgument("config file " + path + ": a setting's name must be a plain word, not a " +
                                       (kv.first.IsSequence() ? "list" : kv.first.IsMap() ? "mapping" : "null"));
      }
      std::string key = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) {
        return Status::InvalidArgument("setting '" + key + "' in " + path + " must be a single value, not a " +
                                       (kv.second.IsSequence() ? "list" : kv.second.IsMap() ? "mapping" : "null"));
      }
      LEVEE_RETURN_IF_ERROR(Set(key, kv.second.as<std::string>(), path));
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("config file " + path + " is not a mapping of setting: value (" + e.what() + ")");
  }
  return Status::OK();
}

Status Config::LoadEnvironment(char** envp, std::vector<std::string>* warnings) {
  for (char** p = envp; p && *p; p++) {
    std::string kv = *p;
    if (kv.rfind("LEVEE_", 0) != 0) continue;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string var = kv.substr(0, eq), value = kv.substr(eq + 1);
    std::string name = Lower(kv.substr(6, eq - 6));
    std::replace(name.begin(), name.end(), '_', '-');
    if (Find(name) == nullptr) {
      warnings->push_back("ignoring environment variable " + var + ": levee has no setting '" + name + "'");
      continue;
    }
    if (value.rfind("tcp://", 0) == 0 || value.rfind("udp://", 0) == 0) {
      warnings->push_back("ignoring environment variable " + var + "=" + value +
                          ": it looks like a Kubernetes service link, not a setting "
                          "(set enableServiceLinks: false in the pod spec)");
      continue;
    }
    LEVEE_RETURN_IF_ERROR(Set(name, value, "environment variable " + var));
  }
  return Status::OK();
}

std::string Config::GetString(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = values_.find(name);
  return it == values_.end() ? "" : it->second;
}

int64_t Config::GetInt(const std::string& name) const {
  std::string v = GetString(name);
  int64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

bool Config::GetBool(const std::string& name) const { return GetString(name) == "yes"; }

void Config::OnChange(const std::string& name, std::function<void(const std::string&)> fn) {
  std::lock_guard<std::mutex> l(mu_);
  watchers_[name].push_back(std::move(fn));
}

namespace {

// A value as YAML writes it: numbers and yes/no bare, strings double-quoted.
std::string YamlValue(const Config::Entry& e, const std::string& v) {
  if (e.type != Config::Type::kString) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// Splits "key: value  # comment" into the setting's name (empty when the
// line is not a top-level setting) and the trailing comment (with the
// spaces before it).
void SplitSettingLine(const std::string& line, std::string* name, std::string* comment) {
  name->clear();
  comment->clear();
  size_t colon = line.find(':');
  if (line.empty() || !std::isalnum(static_cast<unsigned char>(line[0])) || colon == std::string::npos) return;
  std::string key = line.substr(0, colon);
  while (!key.empty() && key.back() == ' ') key.pop_back();
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return;
  }
  *name = Lower(key);
  char quote = 0;
  for (size_t i = colon + 1; i < line.size(); i++) {
    char c = line[i];
    if (quote) {
      if (c == '\\' && quote == '"') i++;
      else if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (line[i - 1] == ' ' || line[i - 1] == '\t')) {
      size_t start = i;
      while (start > colon + 1 && (line[start - 1] == ' ' || line[start - 1] == '\t')) start--;
      *comment = line.substr(start);
      return;
    }
  }
}

}  // namespace

Status Config::Rewrite(const std::string& path) const {
  std::map<std::string, std::string> values;
  {
    std::lock_guard<std::mutex> l(mu_);
    values = values_;
  }
  std::vector<std::string> lines;
  unsigned mode = 0644;
  {
    std::ifstream f(path);
    if (f) {
      for (std::string line; std::getline(f, line);) lines.push_back(line);
    } else if (errno != ENOENT) {
      return Status::IOError("cannot read config file " + path + ": " + std::strerror(errno));
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  }
  // What the file says now, normalised the way Set() normalises values.
  std::set<std::string> in_file;
  for (auto& line : lines) {
    std::string name, comment;
    SplitSettingLine(line, &name, &comment);
    const Entry* e = name.empty() ? nullptr : Find(name);
    if (e == nullptr || !in_file.insert(name).second) continue;
    Config parsed;
    bool same = parsed.LoadYamlText(line, path).ok() && parsed.GetString(name) == values[name];
    if (!same) line = name + ": " + YamlValue(*e, values[name]) + comment;
  }
  std::vector<std::string> added;
  for (const auto& e : Entries()) {
    if (in_file.count(e.name) || values[e.name] == e.default_value) continue;
    added.push_back(e.name + ": " + YamlValue(e, values[e.name]));
  }
  if (!added.empty()) {
    const std::string header = "# Added by CONFIG REWRITE (settings that differ from their defaults).";
    if (std::find(lines.begin(), lines.end(), header) == lines.end()) {
      if (!lines.empty() && !lines.back().empty()) lines.emplace_back();
      lines.push_back(header);
    }
    lines.insert(lines.end(), added.begin(), added.end());
  }
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  // The result must load and give the running values back.
  Config check;
  Status st = check.LoadYamlText(text, path + " (as rewritten)");
  if (!st.ok()) return Status::InvalidArgument("CONFIG REWRITE produced a file that does not load (" + st.message() +
                                        "); " + path + " was left unchanged");
  for (const auto& [name, v] : values) {
    if (check.GetString(name) != v) {
      return Status::InvalidArgument("CONFIG REWRITE could not express '" + name + "' in " + path +
                              " (a duplicate or unusual line?); the file was left unchanged");
    }
  }
  return WriteFileAtomic(path, text, mode);
}

}  // namespace levee
