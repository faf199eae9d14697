#include "common/cpus.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

#include "common/cgroup.h"

namespace levee {
namespace {

// "150000 100000" (v2 cpu.max) or a v1 quota and period: CPUs, 0 for none.
double Ratio(const std::string& quota, const std::string& period) {
  double q = 0, p = 0;
  std::istringstream qs(quota), ps(period);
  if (!(qs >> q) || !(ps >> p) || q <= 0 || p <= 0) return 0;  // "max", -1, empty or garbage
  return q / p;
}

double DirLimit(const CgroupDir& d) {
  if (d.v2) {
    std::istringstream line(FirstLine(d.path + "/cpu.max"));
    std::string quota, period;
    line >> quota >> period;
    return Ratio(quota, period.empty() ? "100000" : period);
  }
  return Ratio(FirstLine(d.path + "/cpu.cfs_quota_us"), FirstLine(d.path + "/cpu.cfs_period_us"));
}

}  // namespace

double CgroupCpuLimit(const std::string& root) {
  double limit = 0;
  for (const auto& d : CgroupDirs(root, "cpu")) {
    double l = DirLimit(d);
    if (l > 0 && (limit == 0 || l < limit)) limit = l;
  }
  return limit;
}

CpuBudget UsableCpus(const std::string& root) {
  CpuBudget b;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) b.affinity = CPU_COUNT(&set);
  b.limit = CgroupCpuLimit(root);
  int n = b.affinity > 0 ? b.affinity : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (b.limit > 0) n = std::min(n, static_cast<int>(std::ceil(b.limit)));
  b.usable = std::max(1, n);
  return b;
}

}  // namespace levee
