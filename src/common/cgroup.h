// Where this process's cgroup limits are: the directories of its own cgroup
// and of each ancestor, in the v2 (unified) hierarchy and in the v1
// hierarchy of one controller. A limit set on any of them applies, so the
// callers take the smallest they find. Used to size caches by the memory
// limit (common/memory.h) and threads by the CPU limit (common/cpus.h).
#pragma once

#include <string>
#include <vector>

namespace levee {

struct CgroupDir {
  std::string path;  // an existing or missing directory; missing ones read as "no limit"
  bool v2 = false;   // unified hierarchy (memory.max, cpu.max) rather than v1 files
};

// root: prefix for /proc and /sys (tests point it at a fake tree).
// v1_controller: "memory", "cpu", ...: the v1 hierarchy whose lines count,
// mounted at /sys/fs/cgroup/<v1_controller>. Most specific first; the
// hierarchies' roots are always included (inside a cgroup namespace a
// container's own cgroup is the root).
std::vector<CgroupDir> CgroupDirs(const std::string& root, const std::string& v1_controller);

// The first line of a file, or "" when it cannot be read.
std::string FirstLine(const std::string& path);

}  // namespace levee
