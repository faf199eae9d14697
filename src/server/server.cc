#include "server/server.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/coding.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/connection.h"
#include "server/http.h"

namespace levee::server {
namespace fs = std::filesystem;
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  return HexEncode(raw);
}

uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string Human(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof(buf), "%.2fG", bytes / double(1ull << 30));
  else if (bytes >= (1ull << 20)) std::snprintf(buf, sizeof(buf), "%.2fM", bytes / double(1ull << 20));
  else if (bytes >= 1024) std::snprintf(buf, sizeof(buf), "%.2fK", bytes / 1024.0);
  else std::snprintf(buf, sizeof(buf), "%lluB", static_cast<unsigned long long>(bytes));
  return buf;
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
  }

  storage::EngineOptions eo;
  eo.path = (fs::path(data_dir_) / "db").string();
  eo.block_cache_bytes = static_cast<size_t>(config_->GetInt("block-cache-mb")) << 20;
  eo.write_buffer_bytes = static_cast<size_t>(config_->GetInt("write-buffer-mb")) << 20;
  eo.max_open_files = static_cast<int>(config_->GetInt("max-open-files"));
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

  Writer::Options wo;
  if (!ParseFsyncPolicy(config_->GetString("fsync"), &wo.fsync)) wo.fsync = FsyncPolicy::kEverySec;
  wo.max_group = static_cast<size_t>(config_->GetInt("max-write-group"));
  wo.expire_keys_per_cycle = static_cast<size_t>(config_->GetInt("expire-keys-per-cycle"));
  wo.keep_segments = static_cast<size_t>(config_->GetInt("wal-keep-segments"));
  wo.min_free_disk_bytes = static_cast<uint64_t>(config_->GetInt("min-free-disk-mb")) << 20;
  wo.data_dir = data_dir_;
  writer_ = std::make_unique<Writer>(engine_.get(), log_.get(), this, wo);
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

  limits_.max_bulk_len = static_cast<size_t>(config_->GetInt("proto-max-bulk-len"));
  query_limit_ = static_cast<size_t>(config_->GetInt("client-query-buffer-limit"));
  output_limit_ = static_cast<size_t>(config_->GetInt("client-output-buffer-limit"));
  maxclients_ = static_cast<size_t>(config_->GetInt("maxclients"));
  WireConfigCallbacks();

  size_t n = static_cast<size_t>(config_->GetInt("io-threads"));
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < n; i++) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
    heartbeats_.push_back(std::make_unique<std::atomic<int64_t>>(NowMs()));
  }

  std::string bind = config_->GetString("bind");
  asio::ip::address addr = asio::ip::make_address(bind, ec);
  if (ec) return Status::InvalidArgument("bind address '" + bind + "' is not an IP address");
  asio::ip::tcp::endpoint ep(addr, static_cast<uint16_t>(config_->GetInt("port")));
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(*contexts_[0]);
  asio::error_code aec;
  acceptor_->open(ep.protocol(), aec);
  if (!aec) acceptor_->set_option(asio::socket_base::reuse_address(true), aec);
  if (!aec) acceptor_->bind(ep, aec);
  if (!aec) acceptor_->listen(asio::socket_base::max_listen_connections, aec);
  if (aec) {
    return Status::IOError("cannot listen on " + bind + ":" + std::to_string(ep.port()) + ": " + aec.message() +
                           " (is another server using the port? set --port)");
  }
  port_ = acceptor_->local_endpoint().port();

  http_ = std::make_unique<HttpServer>(contexts_[0].get(), [this](const std::string& path) {
    HttpServer::Response r;
    if (path == "/healthz") {
      std::string why = Health();
      r.status = why.empty() ? 200 : 503;
      r.body = why.empty() ? "ok\n" : why + "\n";
    } else if (path == "/readyz") {
      bool ok = ready_.load();
      r.status = ok ? 200 : 503;
      r.body = ok ? "ready\n" : "not ready: data is being opened and the log replayed\n";
    } else {
      r.status = 404;
      r.body = "not found: levee serves /healthz and /readyz\n";
    }
    return r;
  });
  LEVEE_RETURN_IF_ERROR(http_->Listen(bind, static_cast<uint16_t>(config_->GetInt("http-port"))));

  writer_->Start();
  for (size_t i = 0; i < contexts_.size(); i++) {
    auto timer = std::make_unique<asio::steady_timer>(*contexts_[i]);
    heartbeat_timers_.push_back(std::move(timer));
    auto* t = heartbeat_timers_.back().get();
    auto* hb = heartbeats_[i].get();
    std::function<void(const asio::error_code&)> tick;
    auto tick_ptr = std::make_shared<std::function<void(const asio::error_code&)>>();
    *tick_ptr = [t, hb, tick_ptr](const asio::error_code& e) {
      if (e) return;
      hb->store(NowMs());
      t->expires_after(std::chrono::milliseconds(500));
      t->async_wait(*tick_ptr);
    };
    t->expires_after(std::chrono::milliseconds(0));
    t->async_wait(*tick_ptr);
    threads_.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
  }
  Accept();
  ready_ = true;
  logging::Info("server", "ready to accept connections",
                {{"port", port_}, {"http_port", http_->port()}, {"data_dir", data_dir_},
                 {"io_threads", contexts_.size()}, {"fsync", config_->GetString("fsync")},
                 {"version", kVersion}});
  return Status::OK();
}

void Server::WireConfigCallbacks() {
  config_->OnChange("fsync", [this](const std::string& v) {
    FsyncPolicy p;
    if (ParseFsyncPolicy(v, &p)) writer_->set_fsync(p);
  });
  config_->OnChange("maxclients", [this](const std::string& v) { maxclients_ = std::stoull(v); });
  config_->OnChange("client-query-buffer-limit", [this](const std::string& v) { query_limit_ = std::stoull(v); });
  config_->OnChange("client-output-buffer-limit", [this](const std::string& v) { output_limit_ = std::stoull(v); });
  config_->OnChange("log-level", [](const std::string& v) { logging::SetLevelByName(v); });
  config_->OnChange("max-write-group", [this](const std::string& v) { writer_->set_max_group(std::stoull(v)); });
  config_->OnChange("expire-keys-per-cycle",
                    [this](const std::string& v) { writer_->set_expire_keys_per_cycle(std::stoull(v)); });
  config_->OnChange("wal-keep-segments", [this](const std::string& v) { writer_->set_keep_segments(std::stoull(v)); });
  config_->OnChange("min-free-disk-mb",
                    [this](const std::string& v) { writer_->set_min_free_disk_bytes(std::stoull(v) << 20); });
  // proto-max-bulk-len applies to connections opened after the change.
  config_->OnChange("proto-max-bulk-len", [this](const std::string& v) { limits_.max_bulk_len = std::stoull(v); });
}

void Server::Accept() {
  asio::io_context& target = *contexts_[next_context_];
  next_context_ = (next_context_ + 1) % contexts_.size();
  acceptor_->async_accept(target, [this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      stats_.connections_received++;
      if (!AdmitClient()) {
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
  for (size_t i = 0; i < heartbeats_.size(); i++) {
    int64_t age = now - heartbeats_[i]->load();
    if (age > 5000) return "io thread " + std::to_string(i) + " has not answered for " + std::to_string(age) + " ms";
  }
  if (writer_) {
    int64_t age = now - writer_->stats().last_group_ms.load();
    if (age > 5000) return "writer thread has not answered for " + std::to_string(age) + " ms";
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
  if (writer_) writer_->Stop();
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  stop_cv_.notify_all();
  if (!threads_.empty()) logging::Info("server", "stopped", {{"applied_sequence", engine_->applied_sequence()}});
}

bool Server::CheckPassword(std::string_view password) {
  // Constant time in the password's content, so timing does not leak it.
  if (password.size() != password_.size()) return false;
  return CRYPTO_memcmp(password.data(), password_.data(), password.size()) == 0;
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

std::string Server::Info(const std::vector<std::string>& req) {
  static const std::vector<std::string> kDefault = {"server", "clients", "memory", "persistence", "stats",
                                                    "replication", "cpu", "keyspace", "levee"};
  std::vector<std::string> sections;
  if (req.empty() || (req.size() == 1 && (req[0] == "default" || req[0] == "all" || req[0] == "everything"))) {
    sections = kDefault;
  } else {
    sections = req;
  }
  std::string out;
  for (const auto& s : sections) {
    std::string body = InfoSection(s);
    if (body.empty()) continue;
    if (!out.empty()) out += "\r\n";
    out += body;
  }
  return out;
}

std::string Server::InfoSection(const std::string& name) {
  auto line = [](std::string& o, const std::string& k, const auto& v) {
    o += k;
    o += ':';
    if constexpr (std::is_convertible_v<decltype(v), std::string>) o += v;
    else o += std::to_string(v);
    o += "\r\n";
  };
  std::string o;
  int64_t now = NowMs();
  if (name == "server") {
    o = "# Server\r\n";
    line(o, "redis_version", std::string("7.0.0"));
    line(o, "levee_version", std::string(kVersion));
    line(o, "redis_mode", std::string("standalone"));
    line(o, "os", std::string("Linux"));
    line(o, "arch_bits", 64);
    line(o, "process_id", static_cast<int64_t>(getpid()));
    line(o, "run_id", run_id_);
    line(o, "tcp_port", static_cast<int64_t>(port_));
    line(o, "http_port", static_cast<int64_t>(http_port()));
    line(o, "uptime_in_seconds", (now - start_ms_) / 1000);
    line(o, "uptime_in_days", (now - start_ms_) / 86400000);
    line(o, "io_threads_active", static_cast<int64_t>(contexts_.size()));
    line(o, "executable", fs::read_symlink("/proc/self/exe").string());
    line(o, "config_file", config_file_);
  } else if (name == "clients") {
    o = "# Clients\r\n";
    line(o, "connected_clients", static_cast<uint64_t>(connected_.load()));
    line(o, "maxclients", static_cast<uint64_t>(maxclients_.load()));
    line(o, "blocked_clients", 0);
  } else if (name == "memory") {
    uint64_t rss = ResidentBytes();
    uint64_t leveldb_mem = 0;
    std::string m = engine_->Property("leveldb.approximate-memory-usage");
    if (!m.empty()) leveldb_mem = std::stoull(m);
    o = "# Memory\r\n";
    line(o, "used_memory", rss);
    line(o, "used_memory_human", Human(rss));
    line(o, "used_memory_rss", rss);
    line(o, "used_memory_rss_human", Human(rss));
    line(o, "leveldb_memory", leveldb_mem);
    line(o, "maxmemory", 0);
  } else if (name == "persistence") {
    const auto& ws = writer_->stats();
    o = "# Persistence\r\n";
    line(o, "loading", ready_.load() ? 0 : 1);
    line(o, "aof_enabled", 1);
    line(o, "aof_fsync", config_->GetString("fsync"));
    line(o, "wal_last_sequence", log_->last_sequence());
    line(o, "wal_fsyncs", ws.fsyncs.load());
    line(o, "wal_write_errors", ws.write_errors.load());
    std::string f = writer_->failure();
    line(o, "aof_last_write_status", std::string(f.empty() ? "ok" : "err"));
    line(o, "rdb_bgsave_in_progress", 0);
    line(o, "rdb_changes_since_last_save", 0);
  } else if (name == "stats") {
    o = "# Stats\r\n";
    line(o, "total_connections_received", stats_.connections_received.load());
    line(o, "total_commands_processed", stats_.commands_processed.load());
    line(o, "total_net_input_bytes", stats_.net_input_bytes.load());
    line(o, "total_net_output_bytes", stats_.net_output_bytes.load());
    line(o, "rejected_connections", stats_.rejected_connections.load());
    line(o, "expired_keys", stats_.expired_keys.load());
    line(o, "evicted_keys", 0);
    line(o, "sync_full", 0);
    line(o, "sync_partial_ok", 0);
    line(o, "sync_partial_err", 0);
    line(o, "total_error_replies_protocol", stats_.protocol_errors.load());
    line(o, "client_output_buffer_limit_disconnections", stats_.output_limit_disconnects.load());
    line(o, "client_query_buffer_limit_disconnections", stats_.query_limit_disconnects.load());
  } else if (name == "replication") {
    o = "# Replication\r\n";
    line(o, "role", std::string("master"));
    line(o, "connected_slaves", 0);
    line(o, "master_replid", run_id_);
    line(o, "master_replid2", std::string(40, '0'));
    line(o, "master_repl_offset", engine_->applied_sequence());
    line(o, "second_repl_offset", -1);
  } else if (name == "cpu") {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char buf[64];
    o = "# CPU\r\n";
    std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(ru.ru_stime.tv_sec), static_cast<long>(ru.ru_stime.tv_usec));
    line(o, "used_cpu_sys", std::string(buf));
    std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(ru.ru_utime.tv_sec), static_cast<long>(ru.ru_utime.tv_usec));
    line(o, "used_cpu_user", std::string(buf));
  } else if (name == "keyspace") {
    o = "# Keyspace\r\n";
    uint64_t keys = engine_->key_count();
    if (keys > 0) {
      o += "db0:keys=" + std::to_string(keys) + ",expires=" + std::to_string(engine_->expires_count()) +
           ",avg_ttl=0\r\n";
    }
  } else if (name == "levee") {
    const auto& ws = writer_->stats();
    auto segs = log_->Segments();
    o = "# Levee\r\n";
    line(o, "applied_sequence", engine_->applied_sequence());
    line(o, "wal_segments", static_cast<uint64_t>(segs.size()));
    line(o, "wal_bytes", log_->total_bytes());
    line(o, "wal_first_sequence", log_->first_sequence());
    line(o, "write_groups", ws.groups.load());
    line(o, "write_commands", ws.commands.load());
    line(o, "write_records", ws.records.load());
    line(o, "write_queue", writer_->queued());
    line(o, "writer_failure", writer_->failure());
    line(o, "leveldb_approximate_bytes", engine_->ApproximateSize());
    // leveldb.stats: a table of "level files size(MB) time read write" rows.
    std::istringstream stats(engine_->Property("leveldb.stats"));
    std::string row;
    while (std::getline(stats, row)) {
      std::istringstream cols(row);
      int level;
      long files;
      double size_mb;
      if (cols >> level >> files >> size_mb) {
        line(o, "leveldb_level" + std::to_string(level) + "_files", static_cast<int64_t>(files));
        line(o, "leveldb_level" + std::to_string(level) + "_bytes", static_cast<uint64_t>(size_mb * 1048576.0));
      }
    }
  }
  return o;
}

}  // namespace levee::server
