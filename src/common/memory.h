// How much memory this process may use: the smallest of the cgroup memory
// limit (v2 memory.max or v1 memory.limit_in_bytes, of the process's own
// cgroup and its ancestors, up to the root a container sees) and the
// machine's MemTotal. Used to size caches whose setting is "auto".
#pragma once

#include <cstdint>
#include <string>

namespace levee {

// root: prefix for /proc and /sys (tests point it at a fake tree). 0 when
// nothing could be read.
uint64_t MemoryLimitBytes(const std::string& root = "");

// A setting in MiB that may be "auto": auto is fraction of MemoryLimitBytes
// (at least min_mib, at most max_mib); otherwise the number, in bytes.
uint64_t AutoSizedBytes(const std::string& setting, double fraction, uint64_t min_mib, uint64_t max_mib,
                        const std::string& root = "");

}  // namespace levee
