#include "common/memory.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace levee {
namespace {

// The first line of a file as a number; 0 for "max", a missing file or text.
uint64_t ReadLimit(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return 0;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), n);
  return ec == std::errc() ? n : 0;
}

uint64_t MemTotal(const std::string& root) {
  std::ifstream f(root + "/proc/meminfo");
  std::string name, unit;
  uint64_t kb = 0;
  while (f >> name >> kb) {
    std::getline(f, unit);
    if (name == "MemTotal:") return kb * 1024;
  }
  return 0;
}

// The cgroup limit files that may apply, most specific first.
std::vector<std::string> LimitFiles(const std::string& root) {
  std::vector<std::string> files;
  std::ifstream f(root + "/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // hierarchy-id:controllers:path
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (path == "/") path.clear();
    if (controllers.empty()) {
      files.push_back(root + "/sys/fs/cgroup" + path + "/memory.max");
    } else {
      std::stringstream ss(controllers);
      std::string c;
      while (std::getline(ss, c, ',')) {
        if (c == "memory") files.push_back(root + "/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes");
      }
    }
  }
  files.push_back(root + "/sys/fs/cgroup/memory.max");
  files.push_back(root + "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  return files;
}

}  // namespace

uint64_t MemoryLimitBytes(const std::string& root) {
  uint64_t limit = MemTotal(root);
  for (const auto& file : LimitFiles(root)) {
    uint64_t n = ReadLimit(file);
    if (n > 0 && (limit == 0 || n < limit)) limit = n;
  }
  return limit;
}

uint64_t AutoSizedBytes(const std::string& setting, double fraction, uint64_t min_mib, uint64_t max_mib,
                        const std::string& root) {
  if (setting != "auto") {
    uint64_t mib = 0;
    std::from_chars(setting.data(), setting.data() + setting.size(), mib);
    return mib << 20;
  }
  uint64_t mib = static_cast<uint64_t>(static_cast<double>(MemoryLimitBytes(root)) * fraction) >> 20;
  return std::clamp(mib, min_mib, max_mib) << 20;
}

}  // namespace levee
