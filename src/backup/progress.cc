#include "backup/progress.h"

#include <cstdio>
#include <iostream>

namespace levee::backup {

std::string Progress::Bytes(double n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", n, kUnits[u]);
  return buf;
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::SetTotal(uint64_t bytes, uint64_t files) {
  total_bytes_ = bytes;
  total_files_ = files;
}

void Progress::Add(uint64_t bytes, uint64_t files) {
  done_bytes_ += bytes;
  done_files_ += files;
  if (mode_ == Mode::kQuiet) return;
  double now = elapsed_s();
  std::lock_guard<std::mutex> l(mu_);
  double every = mode_ == Mode::kJson ? 1.0 : 0.2;
  if (last_print_s_ >= 0 && now - last_print_s_ < every) return;
  last_print_s_ = now;
  Print(false);
}

void Progress::Print(bool final) {
  double t = elapsed_s();
  uint64_t done = done_bytes_, total = total_bytes_;
  double rate = t > 0 ? static_cast<double>(done) / t : 0;
  double remaining = rate > 0 && total > done ? static_cast<double>(total - done) / rate : 0;
  double frac = total > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total)) : (final ? 1.0 : 0.0);
  if (mode_ == Mode::kJson) {
    nlohmann::json j = {{"message_type", "status"},
                        {"action", action_},
                        {"seconds_elapsed", static_cast<int64_t>(t)},
                        {"seconds_remaining", static_cast<int64_t>(remaining)},
                        {"percent_done", frac},
                        {"total_files", total_files_.load()},
                        {"files_done", done_files_.load()},
                        {"total_bytes", total},
                        {"bytes_done", done},
                        {"bytes_per_second", static_cast<uint64_t>(rate)}};
    std::cout << j.dump() << "\n" << std::flush;
    return;
  }
  int width = 30, filled = static_cast<int>(frac * width);
  std::string bar(filled, '=');
  if (filled < width) bar += std::string(width - filled, ' ');
  char eta[32];
  int r = static_cast<int>(remaining);
  std::snprintf(eta, sizeof(eta), "%d:%02d:%02d", r / 3600, r / 60 % 60, r % 60);
  std::fprintf(stderr, "\r%s [%s] %5.1f%%  %s / %s  %s/s  ETA %s ", action_.c_str(), bar.c_str(), frac * 100,
               Bytes(static_cast<double>(done)).c_str(), Bytes(static_cast<double>(total)).c_str(),
               Bytes(rate).c_str(), final ? "0:00:00" : eta);
  if (final) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void Progress::Finish(const nlohmann::json& summary) {
  if (mode_ == Mode::kQuiet) return;
  std::lock_guard<std::mutex> l(mu_);
  Print(true);
  if (mode_ == Mode::kJson) {
    nlohmann::json j = summary;
    j["message_type"] = "summary";
    j["action"] = action_;
    j["seconds_elapsed"] = elapsed_s();
    std::cout << j.dump() << "\n" << std::flush;
  }
}

}  // namespace levee::backup
