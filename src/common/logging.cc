#include "common/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace levee::logging {
namespace {

std::atomic<bool> g_json{true};
std::atomic<int> g_level{static_cast<int>(Severity::kInfo)};
std::mutex g_mu;

const char* Name(Severity s) {
  switch (s) {
    case Severity::kDebug: return "DEBUG";
    case Severity::kInfo: return "INFO";
    case Severity::kWarning: return "WARNING";
    case Severity::kError: return "ERROR";
    case Severity::kCritical: return "CRITICAL";
  }
  return "DEFAULT";
}

std::string Rfc3339Now() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return buf;
}

}  // namespace

void SetFormat(bool json) { g_json = json; }
void SetLevel(Severity s) { g_level = static_cast<int>(s); }
void SetLevelByName(const std::string& n) {
  if (n == "debug") SetLevel(Severity::kDebug);
  else if (n == "info") SetLevel(Severity::kInfo);
  else if (n == "warning") SetLevel(Severity::kWarning);
  else if (n == "error") SetLevel(Severity::kError);
}
bool Enabled(Severity s) { return static_cast<int>(s) >= g_level.load(std::memory_order_relaxed); }

void Log(Severity s, const std::string& component, const std::string& message, const nlohmann::json& fields) {
  if (!Enabled(s)) return;
  std::string line;
  if (g_json) {
    nlohmann::json j = fields.is_object() ? fields : nlohmann::json::object();
    j["severity"] = Name(s);
    j["message"] = message;
    j["time"] = Rfc3339Now();
    j["component"] = component;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = Rfc3339Now() + " " + Name(s) + " [" + component + "] " + message;
    if (fields.is_object()) {
      for (auto it = fields.begin(); it != fields.end(); ++it) {
        line += " " + it.key() + "=" +
                (it->is_string() ? it->get<std::string>()
                                 : it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
  }
  line.push_back('\n');
  std::lock_guard<std::mutex> l(g_mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void RateLimit::Log(Severity s, const std::string& component, const std::string& message, nlohmann::json fields) {
  uint64_t suppressed = 0;
  if (!Allow(&suppressed)) return;
  fields["suppressed_since_last"] = suppressed;
  logging::Log(s, component, message, fields);
}

bool RateLimit::Allow(uint64_t* suppressed) {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> l(mu_);
  if (now - window_start_ms_ >= 60000) {
    window_start_ms_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= per_minute_) {
    suppressed_++;
    return false;
  }
  in_window_++;
  if (suppressed) *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace levee::logging
