#include "common/memory.h"

#include <gtest/gtest.h>

#include "../test_util.h"

namespace levee {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

// A 16 GiB machine whose /proc/self/cgroup says cgroup, with one limit file.
void Machine(const levee::testing::TempDir& dir, const std::string& cgroup, const std::string& limit_file,
             const std::string& limit) {
  dir.Write("proc/meminfo", "MemTotal:       16777216 kB\nMemFree:        1000 kB\n");
  dir.Write("proc/self/cgroup", cgroup);
  dir.Write(limit_file, limit);
}

TEST(MemoryTest, TheMachinesMemoryWhenNoCgroupLimitsIt) {
  levee::testing::TempDir d;
  Machine(d, "0::/\n", "sys/fs/cgroup/memory.max", "max\n");
  EXPECT_EQ(MemoryLimitBytes(d.path()), 16 * kGiB);
}

TEST(MemoryTest, ACgroupV2LimitOfTheOwnCgroupWins) {
  levee::testing::TempDir d;
  Machine(d, "0::/kubepods/pod1/levee\n", "sys/fs/cgroup/kubepods/pod1/levee/memory.max", "4294967296\n");
  EXPECT_EQ(MemoryLimitBytes(d.path()), 4 * kGiB);
  // auto is a quarter, clamped.
  EXPECT_EQ(AutoSizedBytes("auto", 0.25, 16, 16384, d.path()), 1 * kGiB);
  EXPECT_EQ(AutoSizedBytes("auto", 0.25, 16, 512, d.path()), 512ull << 20);
  EXPECT_EQ(AutoSizedBytes("100", 0.25, 16, 512, d.path()), 100ull << 20);
  EXPECT_EQ(AutoSizedBytes("0", 0.25, 16, 512, d.path()), 0u);
}

TEST(MemoryTest, ACgroupV1LimitAndAContainersRootViewAreRead) {
  levee::testing::TempDir d;
  Machine(d, "9:pids:/x\n4:cpu,memory:/docker/abc\n", "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
          "2147483648\n");
  EXPECT_EQ(MemoryLimitBytes(d.path()), 2 * kGiB);

  // Inside a cgroup namespace the own cgroup is "/" and the limit sits at
  // the root; v1's "no limit" is a huge number, not a limit.
  levee::testing::TempDir n;
  Machine(n, "4:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(MemoryLimitBytes(n.path()), 16 * kGiB);
  n.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
  EXPECT_EQ(MemoryLimitBytes(n.path()), 1 * kGiB);
}

TEST(MemoryTest, NothingReadableMeansZeroAndAutoTakesItsFloor) {
  levee::testing::TempDir d;
  EXPECT_EQ(MemoryLimitBytes(d.path()), 0u);
  EXPECT_EQ(AutoSizedBytes("auto", 0.25, 16, 16384, d.path()), 16ull << 20);
}

}  // namespace
}  // namespace levee
