// Config: levee's one typed configuration table.
//
// Every setting is an Entry: name, type, default, range or allowed values,
// whether CONFIG SET may change it at run time, and a help line. Values come
// from (lowest to highest precedence) the defaults, a YAML file, the
// environment (LEVEE_<NAME>, dashes as underscores) and command-line flags.
// Bad input is refused with a message naming the setting, the source, and
// what is allowed.
//
// Thread-safe: Get*/Set take an internal lock. Code on a hot path caches
// what it needs and re-reads it from an OnChange callback.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace levee {

class Config {
 public:
  enum class Type { kInt, kBytes, kString, kEnum, kBool };
  struct Entry {
    std::string name;
    Type type;
    std::string default_value;
    int64_t min = 0;
    int64_t max = 0;
    std::vector<std::string> allowed;  // kEnum
    bool mutable_at_runtime = false;
    std::string help;
  };

  // The table with every levee setting at its default.
  Config();

  static const std::vector<Entry>& Entries();
  static const Entry* Find(const std::string& name);

  // Sets a value from `source` ("levee.yaml", "environment", "flag",
  // "CONFIG SET"); validates, and for "CONFIG SET" refuses immutable ones.
  Status Set(const std::string& name, const std::string& value, const std::string& source);
  Status LoadYamlFile(const std::string& path);
  Status LoadYamlText(const std::string& text, const std::string& source);

  // CONFIG REWRITE: writes the current values back to the YAML file at path.
  // Lines of settings whose value changed are rewritten in place (keeping a
  // trailing comment); settings that differ from their default and are not
  // in the file are appended; every other line, comments included, is kept.
  // The new file is checked by loading it, then replaces the old one
  // atomically (temporary file, fsync, rename, fsync of the directory).
  Status Rewrite(const std::string& path) const;
  // LEVEE_<NAME> variables. One that names no setting, or whose value looks
  // like a Kubernetes service link (LEVEE_PORT=tcp://10.0.0.1:6379, injected
  // into every pod when a Service is called "levee"), is skipped with a line
  // in *warnings; a bad value for a setting is an error.
  Status LoadEnvironment(char** envp, std::vector<std::string>* warnings);

  std::string GetString(const std::string& name) const;
  int64_t GetInt(const std::string& name) const;  // kInt and kBytes
  bool GetBool(const std::string& name) const;

  // Called (outside the lock) after a successful Set of that name.
  void OnChange(const std::string& name, std::function<void(const std::string&)> fn);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> watchers_;
};

// A comma-separated list setting ("sync:, lock:", "flushall,config"): its
// items, spaces around them trimmed, empty ones dropped.
std::vector<std::string> SplitCommaList(const std::string& s);

// Parses "123", "64mb", "1gb", "512k" (Redis' units: k=1000, kb=1024, ...).
bool ParseBytes(const std::string& s, int64_t* out);

}  // namespace levee
