// Metrics: a registry of metric families and their Prometheus exposition.
//
// A module registers each family once — name (levee_*, unit in the name),
// HELP text, type, histogram bounds — with a collect callback that reads the
// module's own counters when /metrics is scraped. The hot path therefore
// never touches the registry: it bumps relaxed atomics it owns (Counter,
// Histogram below), and the registry's lock is taken only by Register and
// Expose.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace levee::observe {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { kCounter, kGauge, kHistogram };

// A histogram's buckets, sum and count, as read at scrape time.
struct HistogramSnapshot {
  std::vector<uint64_t> buckets;  // per bucket, not cumulative; one per bound plus +Inf
  double sum = 0;
  uint64_t count = 0;
};

// Receives a family's samples during collection.
class SampleWriter {
 public:
  virtual ~SampleWriter() = default;
  virtual void Value(const Labels& labels, double v) = 0;
  virtual void Histogram(const Labels& labels, const HistogramSnapshot& h) = 0;
};

struct Family {
  std::string name;  // for counters, ends in _total
  std::string help;
  Type type = Type::kCounter;
  std::vector<double> bounds;  // histogram upper bounds, ascending
  std::function<void(SampleWriter&)> collect;
};

class Registry {
 public:
  // Adds a family; a second family of the same name is a programming error
  // and is ignored (the first stays).
  void Register(Family family);
  // Prometheus text format 0.0.4, or OpenMetrics 1.0 when openmetrics.
  std::string Expose(bool openmetrics) const;

 private:
  mutable std::mutex mu_;
  std::vector<Family> families_;
};

// A histogram with fixed bounds whose Observe costs two relaxed atomic adds
// and a short search. Values in the family's unit (seconds, commands, ...).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;
  void Observe(double v);
  HistogramSnapshot Snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }
  void Reset();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};  // sum * 1e9, so it can be an integer atomic
};

// Latency bounds in seconds, 10 µs to 10 s.
std::vector<double> LatencyBounds();

// Formats a sample value the way Prometheus parses it (+Inf, NaN, integers
// without an exponent).
std::string FormatValue(double v);

}  // namespace levee::observe
