#include "common/memory.h"

#include <algorithm>
#include <charconv>
#include <fstream>

#include "common/cgroup.h"

namespace levee {
namespace {

// The first line of a file as a number; 0 for "max", a missing file or text.
uint64_t ReadLimit(const std::string& path) {
  std::string line = FirstLine(path);
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

}  // namespace

uint64_t MemoryLimitBytes(const std::string& root) {
  uint64_t limit = MemTotal(root);
  for (const auto& dir : CgroupDirs(root, "memory")) {
    uint64_t n = ReadLimit(dir.path + (dir.v2 ? "/memory.max" : "/memory.limit_in_bytes"));
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
