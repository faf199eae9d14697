#include "storage/closed_logs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../test_util.h"

namespace levee::storage {
namespace {

namespace fs = std::filesystem;

TEST(ClosedLogsTest, WaitAllReturnsOnceEveryQueuedLogIsSynced) {
  levee::testing::TempDir tmp;
  fs::path dir = tmp.Sub("db");
  fs::create_directories(dir);
  ClosedLogs logs;
  EXPECT_EQ(logs.WaitAll(), "");  // nothing queued: returns at once
  for (int i = 0; i < 20; i++) {
    fs::path p = dir / (std::to_string(i) + ".log");
    std::ofstream(p) << "records " << i;
    logs.Closed(p.string());
  }
  logs.Closed((dir / "removed-by-leveldb.log").string());  // gone already: nothing to sync, no error
  EXPECT_EQ(logs.WaitAll(), "");
  EXPECT_EQ(logs.failure(), "");
}

TEST(ClosedLogsTest, AnUnopenableLogIsAFailureThatStays) {
  ClosedLogs logs;
  levee::testing::TempDir dir;
  std::ofstream(dir.Sub("a-file")) << "x";
  logs.Closed(dir.Sub("a-file") + "/000003.log");  // ENOTDIR, not ENOENT
  std::string f = logs.WaitAll();
  EXPECT_NE(f.find("cannot open to sync"), std::string::npos) << f;
  EXPECT_EQ(logs.WaitAll(), f);  // kept: the writer refuses writes on it
}

}  // namespace
}  // namespace levee::storage
