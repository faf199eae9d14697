// Wall-clock time in milliseconds since the Unix epoch: what expiry times,
// log record times and client ages are measured in.
#pragma once

#include <chrono>
#include <cstdint>

namespace levee {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace levee
