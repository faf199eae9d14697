// Structured logging to stdout.
//
// json format: one object per line with the fields Cloud Logging reads
// (severity, message, time as RFC 3339 UTC with microseconds) plus the
// caller's structured fields; text format: "time SEVERITY [component] message k=v".
// Never pass passwords, key material or value bytes in a message or field.
//
// Thread-safe: a line is written whole under a lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace levee::logging {

enum class Severity { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kCritical = 4 };

void SetFormat(bool json);
void SetLevel(Severity s);
// "debug" | "info" | "warning" | "error"; unknown names leave it unchanged.
void SetLevelByName(const std::string& name);
bool Enabled(Severity s);

void Log(Severity s, const std::string& component, const std::string& message,
         const nlohmann::json& fields = nlohmann::json::object());

inline void Info(const std::string& c, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(Severity::kInfo, c, m, f);
}
inline void Warn(const std::string& c, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(Severity::kWarning, c, m, f);
}
inline void Error(const std::string& c, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(Severity::kError, c, m, f);
}

// For lines a client can cause (a failed AUTH, a protocol error, a refused
// connection): lets at most `per_minute` lines of one kind through each
// minute, so a hostile client cannot flood the log. Thread-safe.
class RateLimit {
 public:
  explicit RateLimit(int per_minute) : per_minute_(per_minute) {}
  // True when a line may be written now; then *suppressed (if given) is how
  // many lines of this kind were held back since the last one written, for
  // the line to report.
  bool Allow(uint64_t* suppressed = nullptr);
  // Logs the line when Allow() lets it through, with a
  // "suppressed_since_last" field added to fields.
  void Log(Severity s, const std::string& component, const std::string& message,
           nlohmann::json fields = nlohmann::json::object());

 private:
  const int per_minute_;
  std::mutex mu_;
  int64_t window_start_ms_ = 0;
  int in_window_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace levee::logging
