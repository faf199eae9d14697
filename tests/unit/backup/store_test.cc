#include "backup/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>

#include "../test_util.h"

namespace levee::backup {
namespace {

std::string Bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Sizes around the 4 KiB alignment direct writes pad to, and past the
// 4 MiB buffer they go through.
const std::vector<size_t> kSizes = {0, 1, 4095, 4096, 4097, (4u << 20) - 1, (4u << 20) + 4097, (9u << 20) + 3};

void RoundTrip(bool direct) {
  testing::TempDir dir;
  StoreOptions o;
  o.direct_io = direct;
  auto store = OpenStore("file://" + dir.path(), o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  for (size_t i = 0; i < kSizes.size(); i++) {
    std::string key = "objects/0" + std::to_string(i) + "/obj" + std::to_string(i);
    std::string data = Bytes(kSizes[i], static_cast<unsigned>(i));
    ASSERT_TRUE(store.value()->Put(key, data).ok()) << kSizes[i];
    struct stat st;
    ASSERT_EQ(::stat((dir.path() + "/" + key).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), data.size()) << "padding was not cut off";
    std::string back;
    ASSERT_TRUE(store.value()->Get(key, &back).ok());
    EXPECT_TRUE(back == data) << "object of " << kSizes[i] << " bytes read back differently";
    uint64_t size = 0;
    auto exists = store.value()->Exists(key, &size);
    ASSERT_TRUE(exists.ok() && exists.value());
    EXPECT_EQ(size, data.size());
  }
  // An object replaced by a shorter one (a retried upload) is the new one.
  std::string shorter = Bytes(10, 99);
  ASSERT_TRUE(store.value()->Put("objects/07/obj7", shorter).ok());
  std::string back;
  ASSERT_TRUE(store.value()->Get("objects/07/obj7", &back).ok());
  EXPECT_EQ(back, shorter);
  ASSERT_TRUE(store.value()->Flush().ok());
  std::vector<StoreEntry> listed;
  ASSERT_TRUE(store.value()->List("objects/", &listed).ok());
  EXPECT_EQ(listed.size(), kSizes.size()) << "a temporary file was left behind or listed";
}

TEST(FileStoreTest, DirectWritesRoundTripEverySize) { RoundTrip(true); }
TEST(FileStoreTest, BufferedWritesRoundTripEverySize) { RoundTrip(false); }

TEST(FileStoreTest, SmallKeysAreWrittenThroughThePageCache) {
  testing::TempDir dir;
  auto store = OpenStore("file://" + dir.path(), StoreOptions{});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store.value()->Put("backups/x.json", "{\"a\":1}").ok());
  std::string back;
  ASSERT_TRUE(store.value()->Get("backups/x.json", &back).ok());
  EXPECT_EQ(back, "{\"a\":1}");
}

// Keys can come from a repository's own content (a planted manifest or
// listing); a key that would leave the repository's directory is refused
// before anything is touched.
TEST(FileStoreTest, RefusesKeysThatLeaveTheRepository) {
  testing::TempDir dir;
  ASSERT_EQ(::mkdir((dir.path() + "/repo").c_str(), 0755), 0);
  std::string victim = dir.path() + "/victim.txt";
  {
    FILE* f = std::fopen(victim.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("keep me", f);
    std::fclose(f);
  }
  auto store = OpenStore("file://" + dir.path() + "/repo", StoreOptions{});
  ASSERT_TRUE(store.ok());
  for (const std::string key : {"../victim.txt", "backups/../../victim.txt", "/etc/passwd", "a//b", ""}) {
    Status st = store.value()->Delete(key);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << key;
    EXPECT_NE(st.message().find("refusing key"), std::string::npos) << st.message();
    std::string out;
    EXPECT_EQ(store.value()->Get(key, &out).code(), Status::Code::kInvalidArgument) << key;
    EXPECT_EQ(store.value()->Put(key, "x").code(), Status::Code::kInvalidArgument) << key;
    EXPECT_FALSE(store.value()->Exists(key, nullptr).ok()) << key;
  }
  struct stat st;
  EXPECT_EQ(::stat(victim.c_str(), &st), 0) << "a file outside the repository was deleted";
  std::vector<StoreEntry> out;
  EXPECT_FALSE(store.value()->List("../", &out).ok());
}

TEST(RateLimiterTest, HoldsTheRateOverABurstOfTakes) {
  RateLimiter limiter(8 << 20);  // 8 MiB/s
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 16; i++) limiter.Take(256 << 10);  // 4 MiB: about half a second
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(s, 0.35) << "4 MiB went through an 8 MiB/s limit in " << s << " s";
}

}  // namespace
}  // namespace levee::backup
