#include "cli/backup_cmd.h"

#include <unistd.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/archive.h"
#include "backup/ops.h"
#include "cli/remote_source.h"
#include "common/config.h"
#include "common/logging.h"
#include "write/writer.h"
#include "storage/engine.h"
#include "wal/log.h"

namespace levee::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Args {
  std::string repo, key_file, server, data_dir, password_file, s3_endpoint, s3_region, id, scratch_dir;
  std::string to_time, timeline;
  bool json_out = false, no_digest = false, deep = false, dry_run = false;
  int parallelism = 4, keep_last = 0, keep_daily = 0, keep_weekly = 0;
  int64_t chunk_mb = 32, freeze_seconds = 60, lock_wait_s = 3600;
  std::string max_rate = "0";
  CLI::App *create = nullptr, *list = nullptr, *verify = nullptr, *restore = nullptr, *prune = nullptr,
           *freeze = nullptr, *thaw = nullptr, *keygen = nullptr, *archive = nullptr;
};
Args args;

std::atomic<bool> g_cancel{false};

int Fail(const std::string& what, const Status& st) {
  if (args.json_out) {
    std::cout << json{{"message_type", "error"}, {"error", st.message()}, {"during", what}}.dump() << "\n";
  }
  std::cerr << "levee backup: " << what << ": " << st.message() << "\n";
  return 1;
}

std::string Env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

StatusOr<std::string> Password() {
  if (!args.password_file.empty()) {
    std::ifstream f(args.password_file);
    std::string p;
    if (!f || !std::getline(f, p)) return Status::InvalidArgument("cannot read --password-file " + args.password_file);
    return p;
  }
  return Env("LEVEE_PASSWORD");
}

StatusOr<std::unique_ptr<backup::Repository>> OpenRepo(bool create) {
  if (args.repo.empty()) return Status::InvalidArgument("--repo is required (file:///path, s3://bucket/prefix, gs://bucket/prefix)");
  backup::RepoOptions o;
  o.create = create;
  o.store.endpoint = args.s3_endpoint;
  o.store.region = args.s3_region;
  if (!args.key_file.empty()) {
    auto key = backup::Key::LoadFile(args.key_file);
    if (!key.ok()) return key.status();
    o.key = key.value();
  }
  return backup::Repository::Open(args.repo, o);
}

backup::Progress::Mode ProgressMode() {
  if (args.json_out) return backup::Progress::Mode::kJson;
  return ::isatty(STDERR_FILENO) ? backup::Progress::Mode::kTerminal : backup::Progress::Mode::kQuiet;
}

StatusOr<uint64_t> Rate() {
  int64_t v;
  if (!ParseBytes(args.max_rate, &v) || v < 0) {
    return Status::InvalidArgument("--max-bytes-per-sec '" + args.max_rate + "' is not a size (e.g. 100mb, 0 for no limit)");
  }
  return static_cast<uint64_t>(v);
}

json ManifestSummary(const backup::Manifest& m) {
  return json{{"id", m.id},
              {"time_ms", m.time_ms},
              {"applied_sequence", m.applied_sequence},
              {"files", m.files.size()},
              {"bytes", m.bytes},
              {"read_bytes", m.read_bytes},
              {"new_bytes", m.new_bytes},
              {"new_stored_bytes", m.new_stored_bytes},
              {"barrier_us", m.barrier_us},
              {"digest", m.digest},
              {"source", m.source},
              {"duration_ms", m.duration_ms}};
}

std::string TimeText(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

// 2026-11-21T10:15:00.123Z (milliseconds shown when there are any).
std::string TimeTextMs(int64_t ms) {
  std::string t = TimeText(ms);
  t[10] = 'T';
  if (ms % 1000 != 0) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
    t.insert(t.size() - 1, frac);
  }
  return t;
}

// RFC 3339 in UTC ("2026-11-21T10:15:00Z", ".123" allowed, a space for the
// T as `backup list` prints it) or "@" and Unix milliseconds.
StatusOr<int64_t> ParseTime(const std::string& s) {
  auto bad = [&] {
    return Status::InvalidArgument("--to-time '" + s +
                                   "' is not a UTC time: use 2026-11-21T10:15:00Z (optionally .123 before the Z), "
                                   "@<Unix milliseconds>, or latest");
  };
  if (!s.empty() && s[0] == '@') {
    char* end = nullptr;
    long long v = std::strtoll(s.c_str() + 1, &end, 10);
    if (s.size() == 1 || *end != '\0' || v < 0) return bad();
    return static_cast<int64_t>(v);
  }
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%d", &tm);
  if (!rest || (*rest != 'T' && *rest != 't' && *rest != ' ')) return bad();
  rest = strptime(rest + 1, "%H:%M:%S", &tm);
  if (!rest) return bad();
  int64_t ms = 0;
  if (*rest == '.') {
    int digits = 0;
    for (rest++; std::isdigit(static_cast<unsigned char>(*rest)); rest++, digits++) {
      if (digits < 3) ms = ms * 10 + (*rest - '0');
    }
    if (digits == 0) return bad();
    for (; digits < 3; digits++) ms *= 10;
  }
  if (std::string(rest) != "Z" && std::string(rest) != "z" && std::string(rest) != "+00:00") return bad();
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// BACKUP RUN on the server, then poll BACKUP STATUS until it is done.
int CreateOnServer(const std::string& password) {
  auto c = RespClient::Connect(args.server, password);
  if (!c.ok()) return Fail("connecting", c.status());
  auto before = c.value()->Call({"BACKUP", "STATUS"});
  if (!before.ok()) return Fail("BACKUP STATUS", before.status());
  auto field = [](const RespValue& v, const std::string& name) -> const RespValue* {
    for (size_t i = 0; i + 1 < v.elems.size(); i += 2) {
      if (v.elems[i].str == name) return &v.elems[i + 1];
    }
    return nullptr;
  };
  int64_t backups0 = field(before.value(), "backups") ? field(before.value(), "backups")->integer : 0;
  int64_t failures0 = field(before.value(), "failures") ? field(before.value(), "failures")->integer : 0;
  auto r = c.value()->Call({"BACKUP", "RUN"});
  if (!r.ok()) return Fail("BACKUP RUN", r.status());
  if (r.value().is_error()) return Fail("BACKUP RUN", Status::IOError(r.value().str));
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto s = c.value()->Call({"BACKUP", "STATUS"});
    if (!s.ok()) return Fail("BACKUP STATUS", s.status());
    const RespValue* b = field(s.value(), "backups");
    const RespValue* f = field(s.value(), "failures");
    const RespValue* running = field(s.value(), "running");
    // The counters move before the server's pass ends (retention follows the
    // backup); done means the pass is over, so a BACKUP RUN right after
    // this returns is not refused as "already running".
    if (running && running->integer != 0) continue;
    if (f && f->integer > failures0) return Fail("server-side backup", Status::IOError(field(s.value(), "last_error")->str));
    if (b && b->integer > backups0) {
      std::string id = field(s.value(), "last_id")->str;
      if (args.json_out) {
        std::cout << json{{"message_type", "summary"}, {"id", id}}.dump() << "\n";
      } else {
        std::cout << "backup " << id << " done by the server (see its log for the figures)\n";
      }
      return 0;
    }
  }
}

int Create() {
  auto rate = Rate();
  if (!rate.ok()) return Fail("create", rate.status());
  if (args.server.empty() == args.data_dir.empty()) {
    return Fail("create", Status::InvalidArgument("give --server HOST:PORT (online) or --data-dir DIR (server stopped)"));
  }
  auto password = Password();
  if (!password.ok()) return Fail("create", password.status());
  if (!args.server.empty() && args.repo.empty()) return CreateOnServer(password.value());
  auto repo = OpenRepo(true);
  if (!repo.ok()) return Fail("opening the repository", repo.status());

  std::unique_ptr<backup::Source> source;
  // Offline: the data directory as levee would open it (log replayed).
  std::unique_ptr<storage::Engine> engine;
  std::unique_ptr<wal::Log> log;
  if (!args.server.empty()) {
    auto s = RemoteSource::Open(args.server, password.value(), !args.no_digest, rate.value());
    if (!s.ok()) return Fail("taking a checkpoint", s.status());
    source = std::move(s.value());
  } else {
    storage::EngineOptions eo;
    eo.path = (fs::path(args.data_dir) / "db").string();
    eo.create_if_missing = false;
    auto e = storage::Engine::Open(eo);
    if (!e.ok()) return Fail("opening " + args.data_dir, e.status());
    engine = std::move(e.value());
    wal::LogOptions lo;
    lo.dir = (fs::path(args.data_dir) / "wal").string();
    std::vector<std::string> warnings;
    auto l = wal::Log::Open(lo, &warnings);
    if (!l.ok()) return Fail("opening " + args.data_dir, l.status());
    log = std::move(l.value());
    {
      write::Writer::Options wo;
      wo.data_dir = args.data_dir;
      write::Writer w(engine.get(), log.get(), nullptr, wo);
      uint64_t replayed = 0;
      Status st = w.Recover(&replayed);
      if (!st.ok()) return Fail("replaying the log of " + args.data_dir, st);
    }
    std::string instance;
    std::ifstream idf(fs::path(args.data_dir) / "instance-id");
    std::getline(idf, instance);
    auto lease = backup::CheckpointLease::Take(engine.get(), log.get(), args.data_dir, instance, nullptr,
                                               !args.no_digest, rate.value(), "data-dir " + fs::absolute(args.data_dir).string());
    if (!lease.ok()) return Fail("taking a checkpoint", lease.status());
    source = std::move(lease.value());
  }
  backup::Progress progress(ProgressMode(), "backup");
  backup::CreateOptions o;
  o.parallelism = args.parallelism;
  o.max_bytes_per_sec = rate.value();
  o.chunk_bytes = static_cast<uint64_t>(args.chunk_mb) << 20;
  o.lock_wait_ms = args.lock_wait_s * 1000;
  o.progress = &progress;
  o.cancel = &g_cancel;
  auto m = backup::CreateBackup(*repo.value(), *source, o);
  source.reset();
  if (!m.ok()) return Fail("backup of " + (args.server.empty() ? args.data_dir : args.server) + " to " + args.repo, m.status());
  json s = ManifestSummary(m.value());
  progress.Finish(s);
  if (!args.json_out) {
    const auto& x = m.value();
    std::cout << "backup " << x.id << " of sequence " << x.applied_sequence << ": " << x.files.size() << " files, "
              << backup::Progress::Bytes(static_cast<double>(x.bytes)) << ", read "
              << backup::Progress::Bytes(static_cast<double>(x.read_bytes)) << ", uploaded "
              << backup::Progress::Bytes(static_cast<double>(x.new_stored_bytes)) << " new, writes held "
              << x.barrier_us << " us, " << x.duration_ms / 1000.0 << " s\n";
  }
  return 0;
}

int List() {
  auto repo = OpenRepo(false);
  if (!repo.ok()) return Fail("opening the repository", repo.status());
  std::vector<backup::Manifest> ms;
  Status st = repo.value()->ListManifests(&ms);
  if (!st.ok()) return Fail("listing backups", st);
  if (args.json_out) {
    json a = json::array();
    for (const auto& m : ms) a.push_back(ManifestSummary(m));
    std::cout << a.dump() << "\n";
    return 0;
  }
  std::printf("%-24s  %-20s  %14s  %10s  %10s  %s\n", "ID", "TIME", "SEQUENCE", "SIZE", "NEW", "SOURCE");
  for (const auto& m : ms) {
    std::printf("%-24s  %-20s  %14llu  %10s  %10s  %s\n", m.id.c_str(), TimeText(m.time_ms).c_str(),
                static_cast<unsigned long long>(m.applied_sequence), backup::Progress::Bytes(static_cast<double>(m.bytes)).c_str(),
                backup::Progress::Bytes(static_cast<double>(m.new_bytes)).c_str(), m.source.c_str());
  }
  return 0;
}

int Verify() {
  auto rate = Rate();
  if (!rate.ok()) return Fail("verify", rate.status());
  auto repo = OpenRepo(false);
  if (!repo.ok()) return Fail("opening the repository", repo.status());
  backup::Progress progress(ProgressMode(), "verify");
  backup::VerifyOptions o;
  o.parallelism = args.parallelism;
  o.max_bytes_per_sec = rate.value();
  o.deep = args.deep;
  o.scratch_dir = args.scratch_dir;
  o.progress = &progress;
  o.cancel = &g_cancel;
  auto r = backup::VerifyBackup(*repo.value(), args.id, o);
  if (!r.ok()) return Fail("verify", r.status());
  const auto& v = r.value();
  json s = {{"id", v.manifest.id}, {"objects", v.objects}, {"bytes", v.bytes}, {"deep", v.deep},
            {"problems", v.problems}, {"ok", v.problems.empty()}};
  if (v.deep) s["digest"] = v.digest;
  progress.Finish(s);
  if (!args.json_out) {
    for (const auto& p : v.problems) std::cout << "BAD: " << p << "\n";
    std::cout << "backup " << v.manifest.id << ": " << v.objects << " objects, "
              << backup::Progress::Bytes(static_cast<double>(v.bytes)) << " checked"
              << (v.deep ? ", restored and every key read" : "") << ": "
              << (v.problems.empty() ? "OK" : std::to_string(v.problems.size()) + " problems") << "\n";
  }
  return v.problems.empty() ? 0 : 1;
}

// Point-in-time restore: the newest backup taken at or before the target
// (or the one named), then the archived log up to the target.
int RestoreToTime(backup::Repository& repo, const backup::TransferOptions& o, backup::Progress& progress) {
  bool latest = args.to_time == "latest";
  int64_t target = INT64_MAX;
  if (!latest) {
    auto t = ParseTime(args.to_time);
    if (!t.ok()) return Fail("restore", t.status());
    target = t.value();
  }
  std::vector<backup::Manifest> ms;
  Status st = repo.ListManifests(&ms);
  if (!st.ok()) return Fail("listing backups", st);
  const backup::Manifest* base = nullptr;
  for (const auto& m : ms) {
    if (!args.id.empty() && args.id != "latest" ? m.id == args.id : m.time_ms <= target) base = &m;
  }
  if (!base && !args.id.empty() && args.id != "latest") {
    return Fail("restore", Status::NotFound("backup " + args.id + " is not in " + repo.url()));
  }
  if (!base) {
    return Fail("restore", Status::NotFound(
                               ms.empty() ? "backup repository " + repo.url() + " has no backups yet"
                                          : "no backup was taken at or before " + TimeTextMs(target) +
                                                "; the oldest is " + ms.front().id + " at " + TimeTextMs(ms.front().time_ms)));
  }
  if (base->time_ms > target) {
    return Fail("restore", Status::InvalidArgument("backup " + base->id + " was taken at " + TimeTextMs(base->time_ms) +
                                                   ", after --to-time " + TimeTextMs(target) +
                                                   "; name an older backup or none"));
  }
  backup::PointInTimeResult pitr;
  backup::PointInTimeOptions po{target, args.timeline};
  auto m = backup::RestoreBackup(repo, base->id, args.data_dir, o, [&](const std::string& staging, const backup::Manifest& man) {
    auto r = backup::ApplyArchive(repo, man, staging + "/wal", po);
    if (!r.ok()) return r.status();
    pitr = r.value();
    if (!latest && pitr.next_time_ms == 0) {
      int64_t end = pitr.records ? pitr.last_time_ms : man.time_ms;
      return Status::NotFound("the log archive ends at sequence " + std::to_string(pitr.last_sequence) + " (" +
                              TimeTextMs(end) + "), before --to-time " + TimeTextMs(target) +
                              ": later writes are not archived yet. Restore to an earlier time, or use "
                              "--to-time latest for everything archived");
    }
    return Status::OK();
  });
  if (!m.ok()) return Fail("point-in-time restore into " + args.data_dir, m.status());
  json summary = ManifestSummary(m.value());
  summary["timeline"] = pitr.timeline;
  summary["archived_records"] = pitr.records;
  summary["restored_sequence"] = pitr.last_sequence;
  summary["last_record_time_ms"] = pitr.last_time_ms;
  summary["target_time_ms"] = latest ? json(nullptr) : json(target);
  progress.Finish(summary);
  if (!args.json_out) {
    std::cout << "restored backup " << m.value().id << " (sequence " << m.value().applied_sequence << ") and "
              << pitr.records << " archived log records through sequence " << pitr.last_sequence;
    if (pitr.records) std::cout << " (written " << TimeTextMs(pitr.last_time_ms) << ")";
    std::cout << " into " << args.data_dir << "; levee replays them when started with --data-dir " << args.data_dir
              << "\n";
  }
  return 0;
}

// The log archive's timelines and the window a point-in-time restore covers.
int ArchiveCmd() {
  auto repo = OpenRepo(false);
  if (!repo.ok()) return Fail("opening the repository", repo.status());
  backup::ArchiveIndex index;
  Status st = backup::LoadArchiveIndex(*repo.value(), &index);
  if (!st.ok()) return Fail("reading the log archive", st);
  std::vector<backup::Manifest> ms;
  st = repo.value()->ListManifests(&ms);
  if (!st.ok()) return Fail("listing backups", st);
  std::string latest = index.Latest();
  // The newest archived record's time: the end of the window.
  int64_t end_ms = 0;
  uint64_t end_seq = 0;
  if (!latest.empty()) {
    st = backup::ReadArchive(*repo.value(), index, latest, index.LastArchived(latest) > 0 ? index.LastArchived(latest) - 1 : 0,
                             [&](wal::Record&& r) {
                               end_ms = r.time_ms;
                               end_seq = r.sequence;
                               return true;
                             });
    if (!st.ok()) return Fail("reading the log archive", st);
  }
  json tls = json::array();
  for (const auto& [id, t] : index.timelines) {
    uint64_t first = 0, last = 0, bytes = 0, n = 0;
    for (const auto& s : index.segments) {
      if (s.timeline != id) continue;
      first = n == 0 ? s.first : std::min(first, s.first);
      last = std::max(last, s.last);
      bytes += s.stored_bytes;
      n++;
    }
    tls.push_back({{"timeline", id}, {"parent", t.parent}, {"fork", t.fork}, {"created_ms", t.created_ms},
                   {"segments", n}, {"first_sequence", first}, {"last_sequence", last}, {"stored_bytes", bytes},
                   {"latest", id == latest}});
  }
  json window = nullptr;
  if (!ms.empty() && end_ms > 0) window = {{"from_ms", ms.front().time_ms}, {"to_ms", end_ms}, {"to_sequence", end_seq}};
  if (args.json_out) {
    std::cout << json{{"timelines", tls}, {"window", window}}.dump() << "\n";
    return 0;
  }
  std::printf("%-40s  %-20s  %10s  %14s  %14s  %10s\n", "TIMELINE", "CREATED", "SEGMENTS", "FIRST", "LAST", "SIZE");
  for (const auto& t : tls) {
    std::printf("%-40s  %-20s  %10llu  %14llu  %14llu  %10s%s\n", t["timeline"].get<std::string>().c_str(),
                TimeText(t["created_ms"].get<int64_t>()).c_str(), static_cast<unsigned long long>(t["segments"].get<uint64_t>()),
                static_cast<unsigned long long>(t["first_sequence"].get<uint64_t>()),
                static_cast<unsigned long long>(t["last_sequence"].get<uint64_t>()),
                backup::Progress::Bytes(static_cast<double>(t["stored_bytes"].get<uint64_t>())).c_str(),
                t["latest"].get<bool>() ? "  (latest)" : "");
    if (!t["parent"].get<std::string>().empty()) {
      std::printf("    forked from %s after sequence %llu\n", t["parent"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(t["fork"].get<uint64_t>()));
    }
  }
  if (window.is_null()) {
    std::cout << "no point-in-time window yet (it needs a backup and archived records after it)\n";
  } else {
    std::cout << "point-in-time restore window: " << TimeTextMs(ms.front().time_ms) << " to " << TimeTextMs(end_ms)
              << " (sequence " << end_seq << ")\n";
  }
  return 0;
}

int Restore() {
  auto rate = Rate();
  if (!rate.ok()) return Fail("restore", rate.status());
  if (args.data_dir.empty()) return Fail("restore", Status::InvalidArgument("--data-dir is required"));
  auto repo = OpenRepo(false);
  if (!repo.ok()) return Fail("opening the repository", repo.status());
  backup::Progress progress(ProgressMode(), "restore");
  backup::TransferOptions o;
  o.parallelism = args.parallelism;
  o.max_bytes_per_sec = rate.value();
  o.progress = &progress;
  o.cancel = &g_cancel;
  if (!args.to_time.empty()) return RestoreToTime(*repo.value(), o, progress);
  auto m = backup::RestoreBackup(*repo.value(), args.id, args.data_dir, o);
  if (!m.ok()) return Fail("restore into " + args.data_dir, m.status());
  progress.Finish(ManifestSummary(m.value()));
  if (!args.json_out) {
    std::cout << "restored backup " << m.value().id << " (sequence " << m.value().applied_sequence << ") into "
              << args.data_dir << "; start levee with --data-dir " << args.data_dir << "\n";
  }
  return 0;
}

int PruneCmd() {
  auto repo = OpenRepo(false);
  if (!repo.ok()) return Fail("opening the repository", repo.status());
  backup::PruneOptions o;
  o.keep_last = args.keep_last;
  o.keep_daily = args.keep_daily;
  o.keep_weekly = args.keep_weekly;
  o.dry_run = args.dry_run;
  o.lock_wait_ms = args.lock_wait_s * 1000;
  auto r = backup::Prune(*repo.value(), o);
  if (!r.ok()) return Fail("prune", r.status());
  const auto& p = r.value();
  if (args.json_out) {
    std::cout << json{{"message_type", "summary"}, {"kept", p.kept}, {"removed", p.removed},
                      {"objects_deleted", p.objects_deleted}, {"archive_segments_deleted", p.archive_segments_deleted},
                      {"bytes_freed", p.bytes_freed}, {"dry_run", args.dry_run}}
                     .dump()
              << "\n";
  } else {
    for (const auto& id : p.removed) std::cout << (args.dry_run ? "would remove " : "removed ") << id << "\n";
    std::cout << "kept " << p.kept.size() << " backups; " << (args.dry_run ? "would delete " : "deleted ")
              << p.objects_deleted << " objects and " << p.archive_segments_deleted << " archived log segments ("
              << backup::Progress::Bytes(static_cast<double>(p.bytes_freed)) << ")\n";
  }
  return 0;
}

int FreezeThaw(bool freeze) {
  if (args.server.empty()) return Fail(freeze ? "freeze" : "thaw", Status::InvalidArgument("--server HOST:PORT is required"));
  auto password = Password();
  if (!password.ok()) return Fail("freeze", password.status());
  auto c = RespClient::Connect(args.server, password.value());
  if (!c.ok()) return Fail("connecting", c.status());
  std::vector<std::string> cmd = {"BACKUP", freeze ? "FREEZE" : "THAW"};
  if (freeze) cmd.push_back(std::to_string(args.freeze_seconds));
  auto r = c.value()->Call(cmd);
  if (!r.ok()) return Fail(freeze ? "freeze" : "thaw", r.status());
  if (r.value().is_error()) return Fail(freeze ? "freeze" : "thaw", Status::IOError(r.value().str));
  std::cout << (freeze ? "writes frozen (at most " + std::to_string(args.freeze_seconds) + " s)" : "writes thawed") << "\n";
  return 0;
}

void RepoOptions(CLI::App* c) {
  c->add_option("--repo", args.repo, "repository: file:///path, s3://bucket/prefix[?endpoint=..&region=..&path_style=true], gs://bucket/prefix")
      ->envname("LEVEE_BACKUP_REPO");
  c->add_option("--key-file,--backup-key-file", args.key_file, "file with the repository key (64 hex digits)")
      ->envname("LEVEE_BACKUP_KEY_FILE");
  c->add_option("--s3-endpoint", args.s3_endpoint, "S3 endpoint when the URL has none");
  c->add_option("--s3-region", args.s3_region, "S3 region when the URL has none");
  c->add_flag("--json", args.json_out, "one JSON object per line on stdout");
}

void TransferFlags(CLI::App* c) {
  c->add_option("--parallelism", args.parallelism, "objects in flight at once")->check(CLI::Range(1, 64));
  c->add_option("--max-bytes-per-sec", args.max_rate, "rate limit, e.g. 100mb (0: none)");
}

}  // namespace

CLI::App* AddBackupCommand(CLI::App& app) {
  CLI::App* b = app.add_subcommand("backup", "consistent online backups: create, list, verify, restore, prune");
  b->require_subcommand(1);
  args.create = b->add_subcommand("create", "back up a running server (--server) or a stopped data directory (--data-dir)");
  RepoOptions(args.create);
  TransferFlags(args.create);
  args.create->add_option("--server", args.server, "HOST:PORT of a running levee (without --repo: the server backs up to its backup-repo)");
  args.create->add_option("--data-dir", args.data_dir, "a stopped server's data directory");
  args.create->add_option("--password-file", args.password_file, "file with the server's password (or LEVEE_PASSWORD)");
  args.create->add_option("--chunk-mb", args.chunk_mb, "largest object, MiB")->check(CLI::Range(1, 1024));
  args.create->add_flag("--no-digest", args.no_digest, "do not record DEBUG DIGEST at the barrier (saves one read of the data)");
  args.create->add_option("--lock-wait", args.lock_wait_s, "seconds to wait for a running prune");

  args.list = b->add_subcommand("list", "list the backups: id, time, applied sequence, size, new bytes");
  RepoOptions(args.list);

  args.verify = b->add_subcommand("verify", "rehash every object of a backup (--deep: restore it and read every key)");
  RepoOptions(args.verify);
  TransferFlags(args.verify);
  args.verify->add_option("id", args.id, "backup id (default: the newest)");
  args.verify->add_flag("--deep", args.deep, "restore into a scratch directory, open with paranoid checks, compare the digest");
  args.verify->add_option("--scratch-dir", args.scratch_dir, "where --deep restores (default: the temp directory)");

  args.restore = b->add_subcommand("restore", "restore a backup into a new data directory");
  RepoOptions(args.restore);
  TransferFlags(args.restore);
  args.restore->add_option("id", args.id, "backup id (default: the newest)");
  args.restore->add_option("--data-dir", args.data_dir, "directory to restore into (must hold no database)")->required();
  args.restore->add_option("--to-time", args.to_time,
                           "point-in-time: replay the log archive up to this UTC time (2026-11-21T10:15:00.123Z, "
                           "@unix-ms, or latest) on the newest backup taken before it");
  args.restore->add_option("--timeline", args.timeline, "with --to-time: follow this timeline (default: the newest)");

  args.archive = b->add_subcommand("archive", "the log archive: timelines and the point-in-time restore window");
  RepoOptions(args.archive);

  args.prune = b->add_subcommand("prune", "forget backups by policy, then delete objects no backup uses");
  RepoOptions(args.prune);
  args.prune->add_option("--keep-last", args.keep_last, "keep the newest N backups");
  args.prune->add_option("--keep-daily", args.keep_daily, "keep the newest backup of each of the last N days");
  args.prune->add_option("--keep-weekly", args.keep_weekly, "keep the newest backup of each of the last N weeks");
  args.prune->add_flag("--dry-run", args.dry_run, "say what would be removed, remove nothing");
  args.prune->add_option("--lock-wait", args.lock_wait_s, "seconds to wait for running backups");

  args.freeze = b->add_subcommand("freeze", "hold writes for a volume snapshot (Velero pre hook); releases itself after --timeout");
  args.freeze->add_option("--server", args.server, "HOST:PORT")->required();
  args.freeze->add_option("--password-file", args.password_file, "file with the server's password (or LEVEE_PASSWORD)");
  args.freeze->add_option("--timeout", args.freeze_seconds, "most seconds to hold writes")->check(CLI::Range(1, 3600));
  args.thaw = b->add_subcommand("thaw", "release writes held by freeze (Velero post hook)");
  args.thaw->add_option("--server", args.server, "HOST:PORT")->required();
  args.thaw->add_option("--password-file", args.password_file, "file with the server's password (or LEVEE_PASSWORD)");

  args.keygen = b->add_subcommand("keygen", "print a new random repository key (64 hex digits)");
  return b;
}

int RunBackupCommand() {
  logging::SetFormat(false);
  logging::SetLevelByName("warning");
  std::signal(SIGPIPE, SIG_IGN);
  if (*args.keygen) {
    std::cout << backup::Key::GenerateHex() << "\n";
    return 0;
  }
  if (*args.create) return Create();
  if (*args.list) return List();
  if (*args.verify) return Verify();
  if (*args.restore) return Restore();
  if (*args.archive) return ArchiveCmd();
  if (*args.prune) return PruneCmd();
  if (*args.freeze) return FreezeThaw(true);
  if (*args.thaw) return FreezeThaw(false);
  return 2;
}

}  // namespace levee::cli
