// The memory allocator levee runs on, and what it says about its memory.
//
// levee links jemalloc when built with LEVEE_JEMALLOC (the default; off
// under sanitizers, which bring their own allocator). glibc's malloc cost
// the writer thread about a tenth of its time in _int_malloc and
// malloc_consolidate under sustained SETs; jemalloc's per-thread caches and
// size classes took SET -P 16 from ~10 to ~8 µs of CPU per operation
// (docs/benchmarks.md). Redis links jemalloc for the same reasons.
#pragma once

#include <cstdint>
#include <string>

namespace levee {

struct AllocatorStats {
  std::string name;        // "jemalloc-5.3.0" or "libc"
  bool known = false;      // the numbers below are the allocator's own
  uint64_t allocated = 0;  // bytes handed to the program and not freed
  uint64_t active = 0;     // bytes in pages with live allocations
  uint64_t resident = 0;   // bytes the allocator keeps resident
};

// Reads the allocator's counters (jemalloc refreshes them on each call).
// Thread-safe; costs a few microseconds.
AllocatorStats ReadAllocatorStats();

}  // namespace levee
