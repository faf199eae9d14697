#include "common/allocator.h"

#ifdef LEVEE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace levee {

#ifdef LEVEE_JEMALLOC
namespace {
uint64_t ReadSize(const char* name) {
  size_t v = 0, len = sizeof(v);
  return mallctl(name, &v, &len, nullptr, 0) == 0 ? v : 0;
}
}  // namespace

AllocatorStats ReadAllocatorStats() {
  AllocatorStats s;
  // The statistics are a snapshot taken at the last "epoch" write.
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  s.known = mallctl("epoch", &epoch, &len, &epoch, len) == 0;
  const char* version = nullptr;
  len = sizeof(version);
  std::string v = mallctl("version", &version, &len, nullptr, 0) == 0 && version != nullptr ? version : "";
  s.name = "jemalloc-" + v.substr(0, v.find('-'));
  if (s.known) {
    s.allocated = ReadSize("stats.allocated");
    s.active = ReadSize("stats.active");
    s.resident = ReadSize("stats.resident");
  }
  return s;
}
#else
AllocatorStats ReadAllocatorStats() {
  AllocatorStats s;
  s.name = "libc";
  return s;
}
#endif

}  // namespace levee
