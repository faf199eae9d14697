#include "repl/history.h"

#include <algorithm>
#include <charconv>

namespace levee::repl {

History Clamp(History h, uint64_t last) {
  if (h.size() > kMaxHistoryEntries) h.resize(kMaxHistoryEntries);
  for (auto& e : h) e.through = std::min(e.through, last);
  return h;
}

uint64_t CommonPrefix(const History& a, const History& b, bool* related) {
  uint64_t common = 0;
  bool any = false;
  for (const auto& x : a) {
    for (const auto& y : b) {
      if (x.id != y.id) continue;
      any = true;
      common = std::max(common, std::min(x.through, y.through));
    }
  }
  if (related) *related = any;
  return common;
}

uint64_t ReceivedAfter(const History& h, uint64_t after, const std::vector<std::string>& own) {
  uint64_t n = 0;
  for (size_t i = 0; i < h.size(); i++) {
    uint64_t hi = h[i].through;
    uint64_t lo = std::max(after, i + 1 < h.size() ? h[i + 1].through : 0);
    if (hi <= lo) continue;
    if (std::find(own.begin(), own.end(), h[i].id) != own.end()) continue;
    n += hi - lo;
  }
  return n;
}

std::string EncodeHistory(const History& h) {
  std::string out;
  for (const auto& e : h) {
    if (!out.empty()) out += ',';
    out += e.id + ":" + std::to_string(e.through);
  }
  return out;
}

bool DecodeHistory(std::string_view s, History* h) {
  h->clear();
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    size_t colon = item.find(':');
    if (colon != 40) return false;
    std::string_view num = item.substr(colon + 1);
    HistoryEntry e{std::string(item.substr(0, colon)), 0};
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), e.through);
    if (ec != std::errc() || p != num.data() + num.size() || num.empty()) return false;
    h->push_back(std::move(e));
    if (h->size() > kMaxHistoryEntries) return false;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
    if (s.empty()) return false;  // a trailing comma
  }
  return !h->empty();
}

}  // namespace levee::repl
