#include "observe/command_stats.h"

#include <chrono>

namespace levee::observe {

CommandStats::CommandStats(size_t commands) {
  for (size_t i = 0; i < commands; i++) cells_.push_back(std::make_unique<CommandCell>());
}

void CommandStats::RecordError(std::string_view text) {
  size_t sp = text.find_first_of(" \r");
  std::string code(text.substr(0, std::min<size_t>(sp == std::string_view::npos ? text.size() : sp, 64)));
  total_errors_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(mu_);
  // Bound the table as Redis does (it stops at 128 distinct codes).
  if (errors_.size() >= 128 && errors_.count(code) == 0) code = "ERRORSTATS_OVERFLOW";
  errors_[code]++;
}

std::map<std::string, uint64_t> CommandStats::Errors() const {
  std::lock_guard<std::mutex> l(mu_);
  return errors_;
}

void CommandStats::Reset() {
  for (auto& c : cells_) {
    c->calls = 0;
    c->usec = 0;
    c->failed = 0;
    c->rejected = 0;
    c->latency.Reset();
  }
  std::lock_guard<std::mutex> l(mu_);
  errors_.clear();
  total_errors_ = 0;
}

void SlowLog::MaybeAdd(int64_t duration_us, const std::vector<std::string>& args, const std::string& addr,
                       const std::string& name) {
  if (!WouldLog(duration_us)) return;
  Entry e;
  e.unix_time = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  e.duration_us = duration_us;
  size_t n = std::min<size_t>(args.size(), 32);
  for (size_t i = 0; i < n; i++) {
    if (n < args.size() && i == n - 1) {
      e.args.push_back("... (" + std::to_string(args.size() - n + 1) + " more arguments)");
      break;
    }
    if (args[i].size() > 128) {
      e.args.push_back(args[i].substr(0, 128) + "... (" + std::to_string(args[i].size() - 128) + " more bytes)");
    } else {
      e.args.push_back(args[i]);
    }
  }
  e.client_addr = addr;
  e.client_name = name;
  std::lock_guard<std::mutex> l(mu_);
  e.id = next_id_++;
  entries_.push_front(std::move(e));
  while (entries_.size() > max_len_) entries_.pop_back();
}

std::vector<SlowLog::Entry> SlowLog::Newest(size_t n) const {
  std::lock_guard<std::mutex> l(mu_);
  n = std::min(n, entries_.size());
  return {entries_.begin(), entries_.begin() + static_cast<long>(n)};
}

size_t SlowLog::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return entries_.size();
}

void SlowLog::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  entries_.clear();
}

void SlowLog::set_max_len(size_t v) {
  std::lock_guard<std::mutex> l(mu_);
  max_len_ = v;
  while (entries_.size() > max_len_) entries_.pop_back();
}

}  // namespace levee::observe
