#include "server/server.h"

#include "server/backups.h"

#include <leveldb/db.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/resource.h>
#include <csignal>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/coding.h"
#include "common/cpus.h"
#include "common/logging.h"
#include "common/memory.h"
#include "common/version.h"
#include "server/connection.h"
#include "server/http.h"

namespace levee::server {
namespace fs = std::filesystem;
namespace {


std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  return HexEncode(raw);
}

constexpr size_t kMaxCursors = 100000;

// Table files and client sockets both need descriptors; the common default
// soft limit (1024) is far too low for either. Raise it toward what the
// settings need, as far as the hard limit allows, and say so if it can't.
void RaiseFileLimit(uint64_t wanted) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= wanted) return;
  rlim_t target = std::min<rlim_t>(wanted, rl.rlim_max);
  rlim_t before = rl.rlim_cur;
  rl.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) target = before;
  if (target < wanted) {
    logging::Warn("server", "file descriptor limit is below what max-open-files + maxclients need; "
                            "raise the hard limit (ulimit -Hn, or the container's nofile) or lower those settings",
                  {{"limit", static_cast<uint64_t>(target)}, {"wanted", wanted}});
  }
}

}  // namespace

namespace {
std::string Sha256(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}
}  // namespace

Server::Server(Config* config) : config_(config) { commands::RegisterAllCommands(&table_); }

Server::~Server() {
  Shutdown();
  // Asio objects go before the io_contexts they use; the contexts go before
  // the HttpServer their pending sessions point at.
  heartbeat_timers_.clear();
  acceptor_.reset();
  if (http_) http_->CloseAcceptor();
  guards_.clear();
  contexts_.clear();
  http_.reset();
}

Status Server::Start() {
  start_ms_ = NowMs();
  run_id_ = RandomHex(20);
  command_stats_ = std::make_unique<observe::CommandStats>(table_.all().size());
  slowlog_.set_slower_than_us(config_->GetInt("slowlog-log-slower-than"));
  slowlog_.set_max_len(static_cast<size_t>(config_->GetInt("slowlog-max-len")));
  liveness_timeout_ms_ = config_->GetInt("liveness-timeout-ms");
  RegisterMetrics();
  // HTTP first: /healthz must answer (and /readyz say why not) while a long
  // log replay runs, or Kubernetes would restart the pod mid-recovery.
  repl_ = std::make_unique<repl::Manager>(this);
  repl_->RegisterMetrics(&registry_);
  backups_ = std::make_unique<BackupService>(this);
  backups_->RegisterMetrics(&registry_);
  LEVEE_RETURN_IF_ERROR(StartHttpAndThreads());
  LEVEE_RETURN_IF_ERROR(OpenData());

  std::string bind = config_->GetString("bind");
  asio::error_code ec;
  asio::ip::address addr = asio::ip::make_address(bind, ec);
  asio::ip::tcp::endpoint ep(addr, static_cast<uint16_t>(config_->GetInt("port")));
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(*contexts_[0]);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("cannot listen on " + bind + ":" + std::to_string(ep.port()) + ": " + ec.message() +
                           " (is another server using the port? set --port)");
  }
  port_ = acceptor_->local_endpoint().port();
  // A replica's writer must never make records of its own (expiry).
  if (!config_->GetString("replicaof").empty()) writer_->set_replica_mode(true);
  writer_->Start();
  blob_gc_->Start();
  LEVEE_RETURN_IF_ERROR(repl_->Start(config_->GetString("replicaof")));
  LEVEE_RETURN_IF_ERROR(backups_->Start());
  asio::post(*contexts_[0], [this] { Accept(); });
  ready_ = true;
  logging::Info("server", "ready to accept connections",
                {{"port", port_}, {"http_port", http_->port()}, {"data_dir", data_dir_},
                 {"io_threads", contexts_.size()}, {"usable_cpus", cpus_.usable}, {"cpu_limit", cpus_.limit},
                 {"fsync", config_->GetString("fsync")},
                 {"version", kVersion}});
  return Status::OK();
}

Status Server::StartHttpAndThreads() {
  std::string bind = config_->GetString("bind");
  asio::error_code ec;
  asio::ip::make_address(bind, ec);
  if (ec) return Status::InvalidArgument("bind address '" + bind + "' is not an IP address");
  size_t n = static_cast<size_t>(config_->GetInt("io-threads"));
  // 0: one per CPU this process can use, not per core of the machine (a pod
  // limited to 2 CPUs on a 32-core node must not run 32 busy threads).
  cpus_ = UsableCpus();
  if (n == 0) n = static_cast<size_t>(cpus_.usable);
  for (size_t i = 0; i < n; i++) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
    heartbeats_.push_back(std::make_unique<std::atomic<int64_t>>(NowMs()));
  }
  http_ = std::make_unique<HttpServer>(contexts_[0].get(), [this](const std::string& path, const std::string& accept) {
    return HandleHttp(path, accept);
  });
  LEVEE_RETURN_IF_ERROR(http_->Listen(bind, static_cast<uint16_t>(config_->GetInt("http-port"))));
  for (size_t i = 0; i < contexts_.size(); i++) {
    heartbeat_timers_.push_back(std::make_unique<asio::steady_timer>(*contexts_[i]));
    auto* t = heartbeat_timers_.back().get();
    auto* hb = heartbeats_[i].get();
    auto tick = std::make_shared<std::function<void(const asio::error_code&)>>();
    // The timer owns the callback through this shared_ptr; it ends when the
    // timer is cancelled or destroyed.
    *tick = [t, hb, weak = std::weak_ptr<std::function<void(const asio::error_code&)>>(tick)](
                const asio::error_code& e) {
      if (e) return;
      hb->store(NowMs());
      t->expires_after(std::chrono::milliseconds(250));
      if (auto self = weak.lock()) t->async_wait(*self);
    };
    heartbeat_ticks_.push_back(tick);
    t->expires_after(std::chrono::milliseconds(0));
    t->async_wait(*tick);
    threads_.emplace_back([ctx = contexts_[i].get(), i] {
      pthread_setname_np(pthread_self(), ("levee-io-" + std::to_string(i)).c_str());
      ctx->run();
    });
  }
  return Status::OK();
}

Status Server::OpenData() {
  data_dir_ = config_->GetString("data-dir");
  std::error_code ec;
  fs::create_directories(data_dir_, ec);
  if (ec) return Status::IOError("cannot create data directory " + data_dir_ + ": " + ec.message());

  std::string pass_file = config_->GetString("requirepass-file");
  if (!pass_file.empty()) {
    std::ifstream f(pass_file);
    if (!f) return Status::InvalidArgument("cannot read requirepass-file " + pass_file + ": " + std::strerror(errno));
    std::getline(f, password_);
    while (!password_.empty() && (password_.back() == '\r' || password_.back() == ' ')) password_.pop_back();
    if (password_.empty()) {
      return Status::InvalidArgument("requirepass-file " + pass_file +
                                     " has an empty first line; put the password on it or unset requirepass-file");
    }
    password_hash_ = Sha256(password_);
  }
  for (const auto& name : SplitCommaList(config_->GetString("disabled-commands"))) {
    LEVEE_RETURN_IF_ERROR(table_.Disable(name));
  }
  protected_mode_ = config_->GetBool("protected-mode");
  if (password_.empty() && !protected_mode_) {
    const std::string bind = config_->GetString("bind");
    if (bind != "127.0.0.1" && bind != "::1" && bind != "localhost") {
      logging::Warn("server", "no password and protected mode off: any host that reaches " + bind +
                                  " can read, write and delete everything; set requirepass-file");
    }
  }

  LEVEE_RETURN_IF_ERROR(FinishStagedCopy());
  LEVEE_RETURN_IF_ERROR(OpenStorage());

  limits_.max_bulk_len = static_cast<size_t>(config_->GetInt("proto-max-bulk-len"));
  query_limit_ = static_cast<size_t>(config_->GetInt("client-query-buffer-limit"));
  output_limit_ = static_cast<size_t>(config_->GetInt("client-output-buffer-limit"));
  maxclients_ = static_cast<size_t>(config_->GetInt("maxclients"));
  WireConfigCallbacks();
  data_open_.store(true, std::memory_order_release);
  return Status::OK();
}

Status Server::OpenStorage() {
  storage::EngineOptions eo;
  eo.path = (fs::path(data_dir_) / "db").string();
  eo.block_cache_bytes = static_cast<size_t>(config_->GetInt("block-cache-mb")) << 20;
  eo.write_buffer_bytes = static_cast<size_t>(config_->GetInt("write-buffer-mb")) << 20;
  eo.max_open_files = static_cast<int>(config_->GetInt("max-open-files"));
  eo.blob_min_bytes = static_cast<size_t>(config_->GetInt("blob-min-bytes"));
  eo.blob_file_bytes = static_cast<uint64_t>(config_->GetInt("blob-file-mb")) << 20;
  eo.blob_cache_bytes = AutoSizedBytes(config_->GetString("blob-cache-mb"), 0.25, 16, 16 << 10);
  eo.row_cache_bytes = AutoSizedBytes(config_->GetString("row-cache-mb"), 0.125, 16, 8 << 10);
  eo.key_filter_bits_per_key = static_cast<int>(config_->GetInt("key-filter-bits-per-key"));
  RaiseFileLimit(static_cast<uint64_t>(eo.max_open_files) + config_->GetInt("maxclients") + 128);
  auto engine = storage::Engine::Open(eo);
  if (!engine.ok()) return engine.status();
  engine_ = std::move(engine.value());

  wal::LogOptions lo;
  lo.dir = (fs::path(data_dir_) / "wal").string();
  lo.segment_bytes = static_cast<uint64_t>(config_->GetInt("wal-segment-mb")) << 20;
  std::vector<std::string> warnings;
  auto log = wal::Log::Open(lo, &warnings);
  if (!log.ok()) return log.status();
  log_ = std::move(log.value());
  for (const auto& w : warnings) logging::Warn("wal", w);

  write::Writer::Options wo;
  if (!write::ParseFsyncPolicy(config_->GetString("fsync"), &wo.fsync)) wo.fsync = write::FsyncPolicy::kEverySec;
  wo.max_group = static_cast<size_t>(config_->GetInt("max-write-group"));
  wo.expire_keys_per_cycle = static_cast<size_t>(config_->GetInt("expire-keys-per-cycle"));
  wo.keep_segments = static_cast<size_t>(config_->GetInt("wal-keep-segments"));
  wo.min_free_disk_bytes = static_cast<uint64_t>(config_->GetInt("min-free-disk-mb")) << 20;
  wo.data_dir = data_dir_;
  writer_ = std::make_unique<write::Writer>(engine_.get(), log_.get(), this, wo);
  uint64_t replayed = 0;
  auto t0 = std::chrono::steady_clock::now();
  LEVEE_RETURN_IF_ERROR(writer_->Recover(&replayed));
  logging::Info("wal", "recovered",
                {{"replayed_records", replayed},
                 {"applied_sequence", engine_->applied_sequence()},
                 {"keys", engine_->key_count()},
                 {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count()}});
  read_view_ = std::make_unique<storage::EngineView>(engine_.get());
  counter_ = std::make_unique<storage::KeyCounter>(engine_.get());
  if (engine_->counts_need_recount()) {
    // levee stopped with key counts not yet resolved: count the data as it
    // is now in the background; writes meanwhile are counted as usual and
    // the difference is applied when the scan ends.
    logging::Warn("storage", "key counts were not settled when levee last stopped; recounting in the background",
                  {{"applied_sequence", engine_->applied_sequence()}});
    counter_->EnqueueRecount(engine_->raw()->GetSnapshot(), engine_->applied_sequence(), engine_->key_count(),
                             engine_->expires_count());
  }
  writer_->set_counter(counter_.get());
  blob_gc_ = std::make_unique<storage::BlobCollector>(
      engine_.get(), [this](const std::function<void()>& fn) { writer_->RunOnWriter(fn); });
  blob_gc_->set_garbage_ratio(static_cast<double>(config_->GetInt("blob-gc-garbage-percent")) / 100.0);
  engine_->blobs()->set_cache_on_write(config_->GetBool("blob-cache-on-write"));
  engine_->set_row_cache_on_write(config_->GetBool("row-cache-on-write"));
  if (repl_) {
    writer_->set_hooks(repl_.get());
    writer_->set_replica_mode(repl_->is_replica());
  }

  return Status::OK();
}

std::string Server::RewriteConfig() {
  if (config_file_.empty()) {
    return "ERR The server is running without a config file (start levee with --config FILE to use CONFIG REWRITE)";
  }
  Status st = config_->Rewrite(config_file_);
  if (!st.ok()) {
    logging::Warn("config", "CONFIG REWRITE failed", {{"file", config_file_}, {"error", st.ToString()}});
    return "ERR Rewriting config file: " + st.message();
  }
  logging::Info("config", "CONFIG REWRITE wrote the running settings", {{"file", config_file_}});
  return "";
}

std::string Server::instance_id() {
  std::lock_guard<std::mutex> l(instance_mu_);
  if (instance_id_.empty()) {
    fs::path p = fs::path(data_dir_) / "instance-id";
    std::ifstream f(p);
    std::getline(f, instance_id_);
    if (instance_id_.size() != 40) {
      instance_id_ = RandomHex(20);
      std::ofstream o(p, std::ios::trunc);
      o << instance_id_ << "\n";
    }
  }
  return instance_id_;
}

Status Server::FinishStagedCopy() {
  fs::path staging = fs::path(data_dir_) / "sync-staging";
  std::error_code ec;
  if (!fs::exists(staging / "COMPLETE", ec)) return Status::OK();
  // A full resync received everything and then stopped before the copy
  // replaced the database: finish the swap (each step can be redone).
  fs::path db = fs::path(data_dir_) / "db", wal = fs::path(data_dir_) / "wal";
  if (fs::exists(staging / "db", ec)) {
    fs::remove_all(wal, ec);
    fs::remove_all(db, ec);
    if (ec) return Status::IOError("cannot remove " + db.string() + " to install a full-resync copy: " + ec.message());
    fs::rename(staging / "db", db, ec);
    if (ec) return Status::IOError("cannot move the full-resync copy into " + db.string() + ": " + ec.message());
  }
  fs::remove_all(staging, ec);
  fs::remove(fs::path(data_dir_) / "instance-id", ec);
  {
    std::lock_guard<std::mutex> l(instance_mu_);
    instance_id_.clear();
  }
  if (!ready_.load()) {
    logging::Info("repl", "installed the copy a full resync had completed before levee stopped", {{"data_dir", data_dir_}});
  }
  return Status::OK();
}

commands::Backups& Server::backups() { return *backups_; }

void Server::RequestShutdown() {
  // The process's signal thread (cli/main.cc) takes SIGTERM and runs the
  // same graceful stop as `kill`; every other thread blocks it.
  logging::Info("server", "SHUTDOWN requested by a client");
  ::kill(::getpid(), SIGTERM);
}

Status Server::InstallCopy(const std::string& dir, uint64_t sequence) {
  // Backups hold files of the database being replaced: end them first.
  backups_->Suspend();
  struct Resume {
    BackupService* b;
    ~Resume() { b->Resume(); }
  } resume{backups_.get()};
  std::unique_lock<std::shared_mutex> lock(data_mu_);
  bool replica = writer_->replica_mode();
  blob_gc_.reset();  // stops it: it runs work on the writer
  writer_->Stop();
  writer_.reset();
  counter_.reset();
  read_view_.reset();
  Status st = log_->RemoveAll();
  log_.reset();
  engine_.reset();
  if (!st.ok()) return st;
  LEVEE_RETURN_IF_ERROR(FinishStagedCopy());
  (void)dir;
  st = OpenStorage();
  if (!st.ok()) {
    logging::Log(logging::Severity::kCritical, "repl", "could not open the database after a full resync",
                 {{"error", st.ToString()}});
    return st;
  }
  writer_->set_replica_mode(replica);
  if (engine_->applied_sequence() != sequence) {
    logging::Error("repl", "full-resync copy has a different applied sequence than the primary announced",
                   {{"copy", engine_->applied_sequence()}, {"announced", sequence}});
  }
  writer_->Start();
  blob_gc_->Start();
  return Status::OK();
}

HttpServer::Response Server::HandleHttp(const std::string& path, const std::string& accept) {
  HttpServer::Response r;
  // The writer and engine are replaced by a full resync; not while we look.
  std::shared_lock<std::shared_mutex> data_lock(data_mu_, std::defer_lock);
  if (data_open_.load(std::memory_order_acquire)) data_lock.lock();
  if (path == "/healthz") {
    std::string why = Health();
    r.status = why.empty() ? 200 : 503;
    r.body = why.empty() ? "ok\n" : why + "\n";
  } else if (path == "/readyz") {
    bool ok = ready_.load();
    std::string why = ok ? repl_->ReadyRefusal() : "opening the data and replaying the write-ahead log";
    r.status = why.empty() ? 200 : 503;
    r.body = why.empty() ? "ready\n" : "not ready: " + why + "\n";
  } else if (path == "/metrics") {
    bool om = accept.find("application/openmetrics-text") != std::string::npos;
    r.body = registry_.Expose(om);
    r.content_type = om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                        : "text/plain; version=0.0.4; charset=utf-8";
  } else {
    r.status = 404;
    r.body = "not found: levee serves /metrics, /healthz and /readyz\n";
  }
  return r;
}

void Server::WireConfigCallbacks() {
  config_->OnChange("fsync", [this](const std::string& v) {
    write::FsyncPolicy p;
    if (write::ParseFsyncPolicy(v, &p)) writer_->set_fsync(p);
  });
  config_->OnChange("maxclients", [this](const std::string& v) { maxclients_ = std::stoull(v); });
  config_->OnChange("protected-mode", [this](const std::string& v) { protected_mode_ = v == "yes"; });
  config_->OnChange("client-query-buffer-limit", [this](const std::string& v) { query_limit_ = std::stoull(v); });
  config_->OnChange("client-output-buffer-limit", [this](const std::string& v) { output_limit_ = std::stoull(v); });
  config_->OnChange("log-level", [](const std::string& v) { logging::SetLevelByName(v); });
  config_->OnChange("max-write-group", [this](const std::string& v) { writer_->set_max_group(std::stoull(v)); });
  config_->OnChange("blob-min-bytes", [this](const std::string& v) { engine_->set_blob_min_bytes(std::stoull(v)); });
  config_->OnChange("blob-file-mb",
                    [this](const std::string& v) { engine_->blobs()->set_file_bytes(std::stoull(v) << 20); });
  config_->OnChange("blob-cache-on-write",
                    [this](const std::string& v) { engine_->blobs()->set_cache_on_write(v == "yes"); });
  config_->OnChange("row-cache-on-write",
                    [this](const std::string& v) { engine_->set_row_cache_on_write(v == "yes"); });
  config_->OnChange("blob-gc-garbage-percent",
                    [this](const std::string& v) { blob_gc_->set_garbage_ratio(std::stod(v) / 100.0); });
  config_->OnChange("expire-keys-per-cycle",
                    [this](const std::string& v) { writer_->set_expire_keys_per_cycle(std::stoull(v)); });
  config_->OnChange("wal-keep-segments", [this](const std::string& v) { writer_->set_keep_segments(std::stoull(v)); });
  config_->OnChange("min-free-disk-mb",
                    [this](const std::string& v) { writer_->set_min_free_disk_bytes(std::stoull(v) << 20); });
  // proto-max-bulk-len applies to connections opened after the change.
  config_->OnChange("slowlog-log-slower-than", [this](const std::string& v) { slowlog_.set_slower_than_us(std::stoll(v)); });
  config_->OnChange("slowlog-max-len", [this](const std::string& v) { slowlog_.set_max_len(std::stoull(v)); });
  config_->OnChange("liveness-timeout-ms", [this](const std::string& v) { liveness_timeout_ms_ = std::stoll(v); });
  config_->OnChange("proto-max-bulk-len", [this](const std::string& v) { limits_.max_bulk_len = std::stoull(v); });
}

void Server::Accept() {
  asio::io_context& target = *contexts_[next_context_];
  next_context_ = (next_context_ + 1) % contexts_.size();
  acceptor_->async_accept(target, [this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      stats_.connections_received++;
      asio::error_code rec;
      auto remote = socket.remote_endpoint(rec);
      if (protected_mode_.load() && password_.empty() && (rec || !IsLoopback(remote.address()))) {
        // Redis' protected mode: no password, so only this host may talk.
        stats_.denied_connections++;
        static const std::string kDenied =
            "-DENIED levee is running in protected mode because protected mode is enabled and no password is set. "
            "In this mode connections are only accepted from the loopback interface. To accept clients from other "
            "hosts, either 1) set a password: requirepass-file (LEVEE_REQUIREPASS_FILE, --requirepass-file), "
            "or 2) turn protected mode off: 'CONFIG SET protected-mode no' from the loopback interface, "
            "--protected-mode no or protected-mode: no in levee.yaml, and MAKE SURE levee is not reachable from "
            "networks you do not trust.\r\n";
        static logging::RateLimit limit(10);
        limit.Log(logging::Severity::kWarning, "net",
                  "refused a client from a non-loopback address: protected mode (no password set)",
                  {{"client", rec ? std::string("?") : remote.address().to_string()}});
        asio::error_code ignored;
        socket.non_blocking(true, ignored);
        asio::write(socket, asio::buffer(kDenied), ignored);
        socket.close(ignored);
      } else if (!AdmitClient()) {
        stats_.rejected_connections++;
        static const std::string kMsg = "-ERR max number of clients reached\r\n";
        asio::error_code ignored;
        asio::write(socket, asio::buffer(kMsg), ignored);
        socket.close(ignored);
      } else {
        auto conn = std::make_shared<Connection>(this, std::move(socket));
        asio::post(conn->executor(), [conn] { conn->Start(); });
      }
    } else {
      logging::Warn("net", "accept failed", {{"error", ec.message()}});
    }
    Accept();
  });
}

bool Server::AdmitClient() {
  size_t cur = connected_.load();
  while (true) {
    if (cur >= maxclients_.load()) return false;
    if (connected_.compare_exchange_weak(cur, cur + 1)) return true;
  }
}

uint16_t Server::http_port() const { return http_ ? http_->port() : 0; }

std::string Server::Health() const {
  int64_t now = NowMs();
  int64_t limit = liveness_timeout_ms_.load();
  for (size_t i = 0; i < heartbeats_.size(); i++) {
    int64_t age = now - heartbeats_[i]->load();
    if (age > limit) return "io thread " + std::to_string(i) + " has not answered for " + std::to_string(age) + " ms";
  }
  // Before ready the writer is not running yet: recovery is, and that is
  // healthy however long it takes (/readyz says not ready).
  if (ready_.load()) {
    int64_t age = now - writer_->stats().last_group_ms.load();
    if (age > limit) return "writer thread has not answered for " + std::to_string(age) + " ms";
  }
  return "";
}

void Server::Wait() {
  std::unique_lock<std::mutex> l(stop_mu_);
  stop_cv_.wait(l, [this] { return stopped_; });
}

void Server::Shutdown() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  ready_ = false;
  if (!contexts_.empty()) {
    asio::post(*contexts_[0], [this] {
      asio::error_code ec;
      if (acceptor_) acceptor_->close(ec);
      if (http_) http_->Stop();
    });
  }
  for (auto& c : clients_.Snapshot()) {
    if (c->kill) c->kill();
  }
  if (repl_) repl_->Stop();
  if (backups_) backups_->Stop();  // before the writer: a freeze holds it
  if (blob_gc_) blob_gc_->Stop();  // before the writer: it runs work on it
  if (writer_) writer_->Stop();
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  stop_cv_.notify_all();
  if (data_open_.load()) logging::Info("server", "stopped", {{"applied_sequence", engine_->applied_sequence()}});
}

void Server::SettleKeyCount() {
  // Blind writes are counted a moment after they are applied; a client that
  // asks for DBSIZE right after writing expects them counted.
  // Bounded: while a recount runs or the counter is far behind, DBSIZE
  // answers with the count as it stands rather than stall its io thread.
  if (counter_) (void)counter_->WaitResolved(engine_->applied_sequence(), 200);
}

bool Server::CheckPassword(std::string_view password) {
  // Hashes of equal length compared in constant time: neither the content
  // nor the length of the password shows in the timing.
  std::string h = Sha256(password);
  return !password_hash_.empty() && h.size() == password_hash_.size() &&
         CRYPTO_memcmp(h.data(), password_hash_.data(), h.size()) == 0;
}

void Server::RecordAuthFailure(const commands::ClientState& client, std::string_view user) {
  stats_.auth_failures++;
  static logging::RateLimit limit(10);
  limit.Log(logging::Severity::kWarning, "auth", "failed AUTH: wrong password or user",
            {{"client", client.addr}, {"user", std::string(user.substr(0, 64))},
             {"total", stats_.auth_failures.load()}});
}

uint64_t Server::SaveCursor(std::string next_key) {
  std::lock_guard<std::mutex> l(cursor_mu_);
  uint64_t id;
  do {
    // Random ids: a client can't guess another client's cursor.
    RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof(id));
    id &= (1ull << 62) - 1;
  } while (id == 0 || cursors_.count(id));
  cursors_[id] = std::move(next_key);
  cursor_order_.push_back(id);
  while (cursor_order_.size() > kMaxCursors) {
    cursors_.erase(cursor_order_.front());
    cursor_order_.pop_front();
  }
  return id;
}

bool Server::LoadCursor(uint64_t cursor, std::string* next_key) {
  std::lock_guard<std::mutex> l(cursor_mu_);
  auto it = cursors_.find(cursor);
  if (it == cursors_.end()) return false;
  *next_key = it->second;
  return true;
}

void Server::ResetStats() {
  command_stats_->Reset();
  stats_.connections_received = 0;
  stats_.rejected_connections = 0;
  stats_.commands_processed = 0;
  stats_.net_input_bytes = 0;
  stats_.net_output_bytes = 0;
  stats_.expired_keys = 0;
  stats_.protocol_errors = 0;
  stats_.output_limit_disconnects = 0;
  stats_.query_limit_disconnects = 0;
}

}  // namespace levee::server
