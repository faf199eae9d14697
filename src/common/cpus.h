// How many CPUs this process can use at once: the CPUs its affinity mask
// allows (taskset, a Kubernetes static CPU manager's cpuset) and its cgroup's
// CPU limit (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us: what
// Kubernetes' resources.limits.cpu sets), rounded up. The machine's core
// count alone overstates it in a container: a pod limited to 2 CPUs on a
// 32-core node that starts 32 busy threads gets them throttled for the rest
// of every 100 ms period, a tail latency of tens of milliseconds.
#pragma once

#include <string>

namespace levee {

// The cgroup CPU limit, in CPUs (1.5 for "150000 100000"); 0 when there is
// none or nothing could be read. root: prefix for /proc and /sys (tests).
double CgroupCpuLimit(const std::string& root = "");

struct CpuBudget {
  int affinity = 0;    // CPUs in the affinity mask (0 when unreadable)
  double limit = 0;    // CgroupCpuLimit, 0 = none
  int usable = 1;      // min(affinity, ceil(limit)), at least 1
};

CpuBudget UsableCpus(const std::string& root = "");

}  // namespace levee
