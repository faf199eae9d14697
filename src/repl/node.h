// Node: what replication needs from the server it runs in (implemented by
// server::Server), so repl/ does not depend on the server's wiring.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace levee {
class Config;
namespace storage {
class Engine;
}
namespace wal {
class Log;
}
namespace write {
struct ReplicatedBatch;
}
}  // namespace levee

namespace levee::repl {

class Node {
 public:
  virtual ~Node() = default;
  virtual Config& config() = 0;
  virtual const std::string& run_id() = 0;
  virtual const std::string& data_dir() = 0;
  virtual uint16_t listen_port() = 0;
  // The database's identity: LevelDB file names are unique within it (a
  // full resync that resumes reuses files only from the same instance).
  virtual std::string instance_id() = 0;
  // The current log and engine (replaced by InstallCopy).
  virtual wal::Log& log() = 0;
  virtual storage::Engine& engine() = 0;
  virtual uint64_t last_sequence() = 0;
  virtual void SetReplicaMode(bool on) = 0;
  virtual void SubmitReplicated(std::unique_ptr<write::ReplicatedBatch> batch) = 0;
  // Runs fn on the writer thread between groups and waits for it.
  virtual void RunOnWriter(const std::function<void()>& fn) = 0;
  // Replaces the database with the complete copy in dir (a LevelDB
  // directory) whose applied sequence must be `sequence`, and starts a new
  // log after it. Readers wait meanwhile.
  virtual Status InstallCopy(const std::string& dir, uint64_t sequence) = 0;
};

}  // namespace levee::repl
