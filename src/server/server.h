// Server: wiring. Opens the engine and the log, recovers, starts the writer,
// the io threads and the listeners, and serves commands::Services (INFO,
// CONFIG, clients, cursors) to the command families.
//
// Threads: Start/Stop from the main thread; Services methods from io threads
// and the writer (each says how it is guarded).
#pragma once

#include <asio.hpp>
#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "commands/pubsub.h"
#include "common/config.h"
#include "common/cpus.h"
#include "common/status.h"
#include "observe/command_stats.h"
#include "observe/metrics.h"
#include "repl/manager.h"
#include "repl/node.h"
#include "resp/parser.h"
#include "server/http.h"
#include "write/writer.h"
#include "storage/blob_gc.h"
#include "storage/engine.h"
#include "storage/key_counter.h"
#include "storage/view.h"
#include "wal/log.h"

namespace levee::server {

class Connection;

struct ServerStats {
  std::atomic<uint64_t> connections_received{0};
  std::atomic<uint64_t> rejected_connections{0};
  std::atomic<uint64_t> commands_processed{0};
  std::atomic<uint64_t> net_input_bytes{0};
  std::atomic<uint64_t> net_output_bytes{0};
  std::atomic<uint64_t> keyspace_hits{0};
  std::atomic<uint64_t> keyspace_misses{0};
  std::atomic<uint64_t> expired_keys{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> output_limit_disconnects{0};
  std::atomic<uint64_t> query_limit_disconnects{0};
  std::atomic<uint64_t> denied_connections{0};  // protected mode
  std::atomic<uint64_t> auth_failures{0};
};

class Server final : public commands::Services, public repl::Node {
 public:
  // config must outlive the server.
  explicit Server(Config* config);
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens data, replays the log, binds the listeners. Errors name the cause.
  Status Start();
  // Runs until Shutdown() (from a signal handler thread or a test).
  void Wait();
  void Shutdown();

  uint16_t port() const { return port_; }
  // The YAML file the settings came from, for INFO (empty: none).
  void set_config_file(std::string path) { config_file_ = std::move(path); }
  uint16_t http_port() const;
  bool ready() const { return ready_.load(); }

  // commands::Services
  Config& config() override { return *config_; }
  storage::Engine& engine() override { return *engine_; }
  wal::Log& log() override { return *log_; }
  commands::ClientRegistry& clients() override { return clients_; }
  const commands::CommandTable& table() override { return table_; }
  std::string Info(const std::vector<std::string>& sections) override;
  void ResetStats() override;
  uint64_t SaveCursor(std::string next_key) override;
  bool LoadCursor(uint64_t cursor, std::string* next_key) override;
  bool RequiresPassword() override { return !password_.empty(); }
  void SettleKeyCount() override;
  bool CheckPassword(std::string_view password) override;
  void RecordAuthFailure(const commands::ClientState& client, std::string_view user) override;
  std::atomic<uint64_t>& expired_keys() override { return stats_.expired_keys; }
  observe::CommandStats& command_stats() override { return *command_stats_; }
  observe::SlowLog& slowlog() override { return slowlog_; }
  commands::Replication& replication() override { return *repl_; }
  commands::PubSub& pubsub() override { return pubsub_; }
  bool ReplicaMode() override { return writer_->replica_mode(); }
  std::string RewriteConfig() override;
  commands::Backups& backups() override;
  void RequestShutdown() override;

  // repl::Node
  const std::string& run_id() override { return run_id_; }
  const std::string& data_dir() override { return data_dir_; }
  uint16_t listen_port() override { return port_; }
  std::string instance_id() override;
  uint64_t last_sequence() override { return writer_->last_sequence(); }
  void SetReplicaMode(bool on) override { writer_->set_replica_mode(on); }
  void SubmitReplicated(std::unique_ptr<write::ReplicatedBatch> batch) override { writer_->SubmitReplicated(std::move(batch)); }
  void RunOnWriter(const std::function<void()>& fn) override { writer_->RunOnWriter(fn); }
  Status InstallCopy(const std::string& dir, uint64_t sequence) override;

  // Held shared by everything that uses the engine, log or writer from an
  // io or HTTP thread; InstallCopy holds it exclusively while it swaps them.
  std::shared_mutex& data_mutex() { return data_mu_; }
  repl::Manager& repl() { return *repl_; }
  // Where modules register their metric families (replication, backup...).
  observe::Registry& metrics() { return registry_; }

  // For connections.
  write::Writer& writer() { return *writer_; }
  storage::DataView& read_view() { return *read_view_; }
  ServerStats& stats() { return stats_; }
  const resp::Limits& limits() const { return limits_; }
  size_t query_buffer_limit() const { return query_limit_.load(); }
  size_t output_buffer_limit() const { return output_limit_.load(); }
  uint64_t NextClientId() { return ++last_client_id_; }
  // Admission: false when maxclients is reached.
  bool AdmitClient();
  void ClientClosed() { connected_--; }
  size_t connected_clients() const { return connected_.load(); }
  // Liveness: io threads bump these from a timer.
  std::string Health() const;

 private:
  void Accept();
  std::string InfoSection(const std::string& name);
  void WireConfigCallbacks();
  Status StartHttpAndThreads();
  Status OpenData();
  // Engine, log, recovery, counter and writer (also after a full resync).
  Status OpenStorage();
  // Finishes a full-resync copy a crash interrupted (sync-staging/COMPLETE).
  Status FinishStagedCopy();
  void RegisterMetrics();  // metrics_families.cc
  HttpServer::Response HandleHttp(const std::string& path, const std::string& accept);

  Config* config_;
  commands::CommandTable table_;
  commands::ClientRegistry clients_;
  commands::PubSub pubsub_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<wal::Log> log_;
  std::unique_ptr<storage::KeyCounter> counter_;  // before writer_: the writer uses it
  std::unique_ptr<write::Writer> writer_;
  std::unique_ptr<storage::BlobCollector> blob_gc_;  // after writer_: it runs work on the writer
  std::unique_ptr<storage::DataView> read_view_;
  std::unique_ptr<repl::Manager> repl_;
  std::unique_ptr<class BackupService> backups_;
  std::shared_mutex data_mu_;
  std::mutex instance_mu_;
  std::string instance_id_;
  std::string password_;
  std::string password_hash_;  // SHA-256 of password_: CheckPassword compares hashes
  std::atomic<bool> protected_mode_{true};
  resp::Limits limits_;
  std::atomic<size_t> query_limit_{0}, output_limit_{0};
  std::atomic<size_t> maxclients_{0};
  std::atomic<size_t> connected_{0};
  std::atomic<uint64_t> last_client_id_{0};
  std::atomic<bool> ready_{false};
  // Set once engine_, log_ and writer_ exist; HTTP threads read them only then.
  std::atomic<bool> data_open_{false};
  std::atomic<int64_t> liveness_timeout_ms_{5000};
  observe::Registry registry_;
  std::unique_ptr<observe::CommandStats> command_stats_;
  observe::SlowLog slowlog_;
  std::string run_id_;
  int64_t start_ms_ = 0;
  std::string data_dir_;
  std::string config_file_;
  uint16_t port_ = 0;

  // io threads: one io_context each; connections stay on one.
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  CpuBudget cpus_;  // what io-threads 0 sized the io threads by
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> heartbeats_;
  std::vector<std::unique_ptr<asio::steady_timer>> heartbeat_timers_;
  std::vector<std::shared_ptr<std::function<void(const asio::error_code&)>>> heartbeat_ticks_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  size_t next_context_ = 0;
  std::unique_ptr<HttpServer> http_;

  std::mutex cursor_mu_;  // guards cursors_ and cursor_order_
  std::unordered_map<uint64_t, std::string> cursors_;
  std::list<uint64_t> cursor_order_;
  uint64_t next_cursor_ = 0;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  ServerStats stats_;
};

}  // namespace levee::server
