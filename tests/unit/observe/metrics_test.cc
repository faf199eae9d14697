#include "observe/metrics.h"

#include <gtest/gtest.h>

#include "observe/command_stats.h"

namespace levee::observe {
namespace {

TEST(MetricsTest, TextExpositionOfCountersGaugesAndHistograms) {
  Registry reg;
  Histogram h({0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(7);
  reg.Register(Family{"x_requests_total", "Requests.\nSecond line", Type::kCounter, {},
                      [](SampleWriter& w) { w.Value({{"cmd", "g\"et"}}, 3); }});
  reg.Register(Family{"x_latency_seconds", "Latency.", Type::kHistogram, {0.1, 1},
                      [&h](SampleWriter& w) { w.Histogram({{"cmd", "get"}}, h.Snapshot()); }});
  reg.Register(Family{"x_requests_total", "duplicate: ignored", Type::kGauge, {}, [](SampleWriter&) {}});
  std::string text = reg.Expose(false);
  EXPECT_EQ(text,
            "# HELP x_requests_total Requests.\\nSecond line\n"
            "# TYPE x_requests_total counter\n"
            "x_requests_total{cmd=\"g\\\"et\"} 3\n"
            "# HELP x_latency_seconds Latency.\n"
            "# TYPE x_latency_seconds histogram\n"
            "x_latency_seconds_bucket{cmd=\"get\",le=\"0.1\"} 1\n"
            "x_latency_seconds_bucket{cmd=\"get\",le=\"1\"} 2\n"
            "x_latency_seconds_bucket{cmd=\"get\",le=\"+Inf\"} 3\n"
            "x_latency_seconds_sum{cmd=\"get\"} 7.55\n"
            "x_latency_seconds_count{cmd=\"get\"} 3\n");
  std::string om = reg.Expose(true);
  EXPECT_NE(om.find("# TYPE x_requests counter\n"), std::string::npos);
  EXPECT_NE(om.find("x_requests_total{"), std::string::npos);
  EXPECT_EQ(om.substr(om.size() - 6), "# EOF\n");
}

TEST(MetricsTest, ErrorCodesAndSlowLogBounds) {
  CommandStats stats(4);
  stats.RecordError("ERR unknown command 'x'");
  stats.RecordError("WRONGTYPE Operation against a key");
  stats.RecordError("ERR syntax error");
  auto errors = stats.Errors();
  EXPECT_EQ(errors["ERR"], 2u);
  EXPECT_EQ(errors["WRONGTYPE"], 1u);
  EXPECT_EQ(stats.total_errors(), 3u);

  SlowLog log;
  log.set_slower_than_us(100);
  log.set_max_len(2);
  std::vector<std::string> args(40, "a");
  args[1] = std::string(300, 'v');
  log.MaybeAdd(99, args, "1.2.3.4:5", "n");  // below the threshold
  EXPECT_EQ(log.size(), 0u);
  for (int i = 0; i < 3; i++) log.MaybeAdd(100 + i, args, "1.2.3.4:5", "n");
  auto entries = log.Newest(10);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].duration_us, 102);
  EXPECT_EQ(entries[0].id, 2u);
  ASSERT_EQ(entries[0].args.size(), 32u);
  EXPECT_EQ(entries[0].args.back(), "... (9 more arguments)");
  EXPECT_EQ(entries[0].args[1], std::string(128, 'v') + "... (172 more bytes)");
  log.set_slower_than_us(-1);
  log.MaybeAdd(1000000, args, "", "");
  EXPECT_EQ(log.Newest(10)[0].duration_us, 102);
}

}  // namespace
}  // namespace levee::observe
