// Helpers shared by the storage unit tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "storage/engine.h"

namespace levee::storage::test {

// An engine on path with a small block cache; blob settings as given.
inline std::unique_ptr<Engine> OpenEngine(const std::string& path, size_t blob_min_bytes = EngineOptions{}.blob_min_bytes,
                                          uint64_t blob_file_bytes = EngineOptions{}.blob_file_bytes) {
  EngineOptions o;
  o.path = path;
  o.block_cache_bytes = 1 << 20;
  o.blob_min_bytes = blob_min_bytes;
  o.blob_file_bytes = blob_file_bytes;
  auto e = Engine::Open(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e.value());
}

// A string value, with an expiry when exp is not 0.
inline StoredValue Str(std::string s, int64_t exp = 0) {
  StoredValue v;
  v.payload = std::move(s);
  v.expire_at_ms = exp;
  return v;
}

}  // namespace levee::storage::test
