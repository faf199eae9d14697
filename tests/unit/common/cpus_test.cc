#include "common/cpus.h"

#include <gtest/gtest.h>

#include "../test_util.h"

namespace levee {
namespace {

TEST(CpusTest, NoLimitFilesMeansNoLimit) {
  levee::testing::TempDir d;
  EXPECT_EQ(CgroupCpuLimit(d.path()), 0);
  d.Write("proc/self/cgroup", "0::/\n");
  d.Write("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuLimit(d.path()), 0);
}

TEST(CpusTest, AV2LimitOnTheOwnCgroupOrAnAncestorCounts) {
  levee::testing::TempDir d;
  d.Write("proc/self/cgroup", "0::/kubepods/pod1/levee\n");
  d.Write("sys/fs/cgroup/kubepods/pod1/levee/cpu.max", "150000 100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuLimit(d.path()), 1.5);
  // The pod's cgroup is tighter than the container's: the smaller wins.
  d.Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuLimit(d.path()), 0.5);
  // "max" on the way up is no limit, not zero.
  d.Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuLimit(d.path()), 1.5);
}

TEST(CpusTest, AV1QuotaAndPeriodAreRead) {
  levee::testing::TempDir d;
  d.Write("proc/self/cgroup", "9:pids:/x\n3:cpu,cpuacct:/docker/abc\n");
  d.Write("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "200000\n");
  d.Write("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuLimit(d.path()), 2.0);
  // -1 is v1's "no quota".
  d.Write("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(CgroupCpuLimit(d.path()), 0);
}

TEST(CpusTest, GarbageReadsAsNoLimit) {
  levee::testing::TempDir d;
  d.Write("proc/self/cgroup", "0::/a\n");
  d.Write("sys/fs/cgroup/a/cpu.max", "lots\n");
  EXPECT_EQ(CgroupCpuLimit(d.path()), 0);
  d.Write("sys/fs/cgroup/a/cpu.max", "100000 0\n");
  EXPECT_EQ(CgroupCpuLimit(d.path()), 0);
}

TEST(CpusTest, UsableIsTheLimitRoundedUpAndNeverAboveTheAffinity) {
  levee::testing::TempDir d;
  CpuBudget none = UsableCpus(d.path());
  ASSERT_GE(none.affinity, 1);
  EXPECT_EQ(none.usable, none.affinity);

  d.Write("proc/self/cgroup", "0::/p\n");
  d.Write("sys/fs/cgroup/p/cpu.max", "50000 100000\n");
  EXPECT_EQ(UsableCpus(d.path()).usable, 1);  // half a CPU still gets one thread
  d.Write("sys/fs/cgroup/p/cpu.max", "10000000 100000\n");  // 100 CPUs
  EXPECT_EQ(UsableCpus(d.path()).usable, none.affinity);
}

}  // namespace
}  // namespace levee
