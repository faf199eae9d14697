#include "cli/backup_cmd.h"

#include <unistd.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/ops.h"
#include "cli/remote_source.h"
#include "common/config.h"
#include "common/logging.h"
#include "server/writer.h"
#include "storage/engine.h"
#include "wal/log.h"

namespace levee::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Args {
  std::string repo, key_file, server, data_dir, password_file, s3_endpoint, s3_region, id, scratch_dir;
  bool json_out = false, no_digest = false, deep = false, dry_run = false;
  int parallelism = 4, keep_last = 0, keep_daily = 0, keep_weekly = 0;
  int64_t chunk_mb = 32, freeze_seconds = 60, lock_wait_s = 3600;
  std::string max_rate = "0";
  CLI::App *create = nullptr, *list = nullptr, *verify = nullptr, *restore = nullptr, *prune = nullptr,
           *freeze = nullptr, *thaw = nullptr, *keygen = nullptr;
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
    auto s = RemoteSource::Open(args.server, password.value(), !args.no_digest);
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
      server::Writer::Options wo;
      wo.data_dir = args.data_dir;
      server::Writer w(engine.get(), log.get(), nullptr, wo);
      uint64_t replayed = 0;
      Status st = w.Recover(&replayed);
      if (!st.ok()) return Fail("replaying the log of " + args.data_dir, st);
    }
    std::string instance;
    std::ifstream idf(fs::path(args.data_dir) / "instance-id");
    std::getline(idf, instance);
    auto lease = backup::CheckpointLease::Take(engine.get(), log.get(), args.data_dir, instance, nullptr,
                                               !args.no_digest, "data-dir " + fs::absolute(args.data_dir).string());
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
                      {"objects_deleted", p.objects_deleted}, {"bytes_freed", p.bytes_freed}, {"dry_run", args.dry_run}}
                     .dump()
              << "\n";
  } else {
    for (const auto& id : p.removed) std::cout << (args.dry_run ? "would remove " : "removed ") << id << "\n";
    std::cout << "kept " << p.kept.size() << " backups; " << (args.dry_run ? "would delete " : "deleted ")
              << p.objects_deleted << " objects (" << backup::Progress::Bytes(static_cast<double>(p.bytes_freed)) << ")\n";
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
  if (*args.prune) return PruneCmd();
  if (*args.freeze) return FreezeThaw(true);
  if (*args.thaw) return FreezeThaw(false);
  return 2;
}

}  // namespace levee::cli
