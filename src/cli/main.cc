// levee: one binary, subcommands in the manner of etcd or cockroach.
//   levee serve [--config levee.yaml] [--port N] [--data-dir D] ...
//   levee check --data-dir D [--json]
//   levee backup create|list|verify|restore|prune|freeze|thaw|keygen ...
//   levee version
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <thread>

#include "cli/backup_cmd.h"
#include "cli/check.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/server.h"

extern char** environ;

namespace {

int Serve(levee::Config& config, const std::string& config_file, const std::vector<std::string>& warnings) {
  levee::logging::SetFormat(config.GetString("log-format") == "json");
  levee::logging::SetLevelByName(config.GetString("log-level"));
  for (const auto& w : warnings) levee::logging::Warn("config", w);

  // Signals are taken by one thread with sigwait; every other thread
  // (started after this) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  levee::server::Server server(&config);
  server.set_config_file(config_file);
  levee::Status st = server.Start();
  if (!st.ok()) {
    levee::logging::Log(levee::logging::Severity::kCritical, "server", "cannot start: " + st.message());
    std::cerr << "levee: cannot start: " << st.message() << "\n";
    return 1;
  }
  std::thread signals([&server, set] {
    int sig = 0;
    sigwait(&set, &sig);
    levee::logging::Info("server", "shutting down", {{"signal", sig}});
    server.Shutdown();
  });
  server.Wait();
  // Wake the signal thread if the server stopped for another reason.
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"levee: a replicated, backup-ready key-value server on LevelDB that speaks the Redis protocol"};
  app.require_subcommand(1);
  app.set_version_flag("--version", levee::kVersion);

  // serve: every setting of the config table is a flag of the same name.
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  std::string config_file;
  serve->add_option("--config", config_file, "YAML file with settings (see levee.yaml)");
  std::map<std::string, std::string> flag_values;
  for (const auto& e : levee::Config::Entries()) {
    std::string help = e.help + " [default: " + (e.default_value.empty() ? "\"\"" : e.default_value) + "]";
    serve->add_option("--" + e.name, flag_values[e.name], help);
  }

  CLI::App* check = app.add_subcommand("check", "verify a stopped server's data directory offline");
  std::string check_dir = "./levee-data";
  bool check_json = false;
  check->add_option("--data-dir", check_dir, "data directory to check");
  check->add_flag("--json", check_json, "print the report as JSON");

  CLI::App* version = app.add_subcommand("version", "print the version");
  CLI::App* backup = levee::cli::AddBackupCommand(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*version) {
    std::cout << "levee " << levee::kVersion << "\n";
    return 0;
  }
  if (*check) return levee::cli::RunCheck(check_dir, check_json);
  if (*backup) return levee::cli::RunBackupCommand();

  levee::Config config;
  levee::Status st;
  std::vector<std::string> env_warnings;
  if (!config_file.empty()) st = config.LoadYamlFile(config_file);
  if (st.ok()) st = config.LoadEnvironment(environ, &env_warnings);
  for (const auto& e : levee::Config::Entries()) {
    if (!st.ok()) break;
    if (serve->count("--" + e.name) > 0) st = config.Set(e.name, flag_values[e.name], "flag --" + e.name);
  }
  if (!st.ok()) {
    std::cerr << "levee: " << st.message() << "\n";
    return 2;
  }
  return Serve(config, config_file, env_warnings);
}
