// A server for tests of the command and write layers: a real Engine and
// write-ahead log in a temporary directory, every command registered, and
// services as a standalone primary (no replicas, no backups) whose clock the
// test sets. Harness::Run runs one command as the dispatcher would.
// Threads: the test's; Services calls from a Writer thread are thread-safe
// where the Writer needs them (clients, pubsub, expired_keys).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "commands/args.h"
#include "commands/client.h"
#include "commands/pubsub.h"
#include "commands/services.h"
#include "commands/spec.h"
#include "common/config.h"
#include "observe/command_stats.h"
#include "storage/engine.h"
#include "storage/write_group.h"
#include "wal/log.h"

namespace levee::commands {

// Replication as a standalone primary with no replicas sees it.
class NoReplication : public Replication {
 public:
  std::string ReplicaOf(const std::string&, int) override { return "ERR not in unit tests"; }
  void Role(resp::ReplyBuilder& rb) override { rb.Bulk("master"); }
  void Replconf(const std::shared_ptr<ClientState>&, const std::vector<std::string>&,
                resp::ReplyBuilder& rb) override {
    rb.Ok();
  }
  void Psync(const std::shared_ptr<ClientState>&, const std::string&, const std::string&,
             resp::ReplyBuilder& rb) override {
    rb.Error("ERR not in unit tests");
  }
  bool is_replica() override { return false; }
  bool has_replicas() override { return false; }
  int64_t AckedBy(uint64_t) override { return 0; }
  int64_t KillReplicas() override { return 0; }
  int64_t KillMasterLink() override { return 0; }
};

class Harness : public Services {
 public:
  Harness() {
    RegisterAllCommands(&table_);
    storage::EngineOptions eo;
    eo.path = dir_.Sub("db");
    eo.block_cache_bytes = 1 << 20;
    engine_ = std::move(storage::Engine::Open(eo).value());
    std::vector<std::string> w;
    log_ = std::move(wal::Log::Open(wal::LogOptions{dir_.Sub("wal"), 1 << 20}, &w).value());
    client_ = NewClient();
  }

  std::shared_ptr<ClientState> NewClient() {
    auto c = std::make_shared<ClientState>();
    c->id = ++ids_;
    c->authenticated = true;
    clients_.Add(c);
    return c;
  }

  // Runs one command as the dispatcher would (queueing inside MULTI too)
  // and returns the raw reply.
  std::string Run(std::vector<std::string> args, std::shared_ptr<ClientState> c = nullptr) {
    if (!c) c = client_;
    const Spec* spec = table_.Find(args[0]);
    std::string out;
    resp::ReplyBuilder rb(&out, c->protocol);
    if (spec == nullptr) {
      rb.Error("ERR unknown command");
      return out;
    }
    if (!spec->ArityOk(args.size())) {
      rb.Error(WrongArgsError(args[0]));
      return out;
    }
    if (c->in_multi && !(spec->flags & kNoQueue)) {
      c->queued.push_back(args);
      rb.SimpleString("QUEUED");
      return out;
    }
    if (spec->flags & (kWrite | kOnWriter | kLogged)) {
      storage::WriteGroup g(engine_.get());
      std::vector<wal::Mutation> muts;
      g.set_recording(&muts);
      CommandContext ctx{c, *this, g, &g, rb, now_ms};
      spec->handler(ctx, args);
      for (const auto& m : muts) clients_.TouchKey(m.key);
      EXPECT_TRUE(g.Commit(++seq_, false).ok());
    } else {
      storage::EngineView v(engine_.get());
      CommandContext ctx{c, *this, v, nullptr, rb, now_ms};
      spec->handler(ctx, args);
    }
    return out;
  }

  // Services
  Config& config() override { return config_; }
  storage::Engine& engine() { return *engine_; }
  wal::Log& log() { return *log_; }
  std::string dir() { return dir_.Sub("data"); }
  ClientRegistry& clients() override { return clients_; }
  const CommandTable& table() override { return table_; }
  std::string Info(const std::vector<std::string>&) override { return "# Server\r\n"; }
  void ResetStats() override {}
  uint64_t SaveCursor(std::string k) override {
    cursors_.push_back(std::move(k));
    return cursors_.size();
  }
  bool LoadCursor(uint64_t c, std::string* k) override {
    if (c == 0 || c > cursors_.size()) return false;
    *k = cursors_[c - 1];
    return true;
  }
  bool RequiresPassword() override { return !password.empty(); }
  bool CheckPassword(std::string_view p) override { return p == password; }
  void RecordAuthFailure(const ClientState&, std::string_view) override { auth_failures++; }
  int auth_failures = 0;
  void SettleKeyCount() override {}
  std::atomic<uint64_t>& expired_keys() override { return expired_; }
  observe::CommandStats& command_stats() override { return stats_; }
  observe::SlowLog& slowlog() override { return slowlog_; }
  Replication& replication() override { return replication_; }
  PubSub& pubsub() override { return pubsub_; }
  bool ReplicaMode() override { return false; }
  std::string RewriteConfig() override { return "ERR not in unit tests"; }
  struct NoBackups : commands::Backups {
    void Handle(const std::vector<std::string>&, resp::ReplyBuilder& rb) override { rb.Error("ERR not in unit tests"); }
  } no_backups;
  commands::Backups& backups() override { return no_backups; }
  void RequestShutdown() override { shutdown_requested++; }
  int shutdown_requested = 0;
  NoReplication replication_;
  PubSub pubsub_;

  int64_t now_ms = 1'700'000'000'000;
  std::string password;
  std::shared_ptr<ClientState> client_;

 private:
  levee::testing::TempDir dir_;
  Config config_;
  CommandTable table_;
  ClientRegistry clients_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<wal::Log> log_;
  std::vector<std::string> cursors_;
  std::atomic<uint64_t> expired_{0};
  observe::CommandStats stats_{256};
  observe::SlowLog slowlog_;
  uint64_t seq_ = 0, ids_ = 0;
};

}  // namespace levee::commands
