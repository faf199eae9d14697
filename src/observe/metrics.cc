#include "observe/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

namespace levee::observe {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string LabelSet(const Labels& labels, const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && extra == nullptr) return "";
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) s += ",";
    first = false;
    s += k + "=\"" + EscapeLabel(v) + "\"";
  }
  if (extra) {
    if (!first) s += ",";
    s += extra->first + "=\"" + EscapeLabel(extra->second) + "\"";
  }
  return s + "}";
}

class TextWriter final : public SampleWriter {
 public:
  TextWriter(std::string* out, const Family& f, bool om) : out_(out), f_(f), om_(om) {}
  void Value(const Labels& labels, double v) override {
    *out_ += f_.name + LabelSet(labels) + " " + FormatValue(v) + "\n";
  }
  void Histogram(const Labels& labels, const HistogramSnapshot& h) override {
    uint64_t cum = 0;
    for (size_t i = 0; i < h.buckets.size(); i++) {
      cum += h.buckets[i];
      std::pair<std::string, std::string> le{"le", i < f_.bounds.size() ? FormatValue(f_.bounds[i]) : "+Inf"};
      *out_ += f_.name + "_bucket" + LabelSet(labels, &le) + " " + std::to_string(cum) + "\n";
    }
    *out_ += f_.name + "_sum" + LabelSet(labels) + " " + FormatValue(h.sum) + "\n";
    *out_ += f_.name + "_count" + LabelSet(labels) + " " + std::to_string(h.count) + "\n";
    (void)om_;
  }

 private:
  std::string* out_;
  const Family& f_;
  bool om_;
};

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

void Registry::Register(Family family) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& f : families_) {
    if (f.name == family.name) return;
  }
  families_.push_back(std::move(family));
}

std::string Registry::Expose(bool openmetrics) const {
  std::vector<Family> families;
  {
    std::lock_guard<std::mutex> l(mu_);
    families = families_;
  }
  std::string out;
  out.reserve(64 * 1024);
  for (const auto& f : families) {
    const char* type = f.type == Type::kCounter ? "counter" : f.type == Type::kGauge ? "gauge" : "histogram";
    // OpenMetrics names a counter family without its _total suffix.
    std::string meta_name = f.name;
    if (openmetrics && f.type == Type::kCounter && meta_name.size() > 6 &&
        meta_name.compare(meta_name.size() - 6, 6, "_total") == 0) {
      meta_name.resize(meta_name.size() - 6);
    }
    out += "# HELP " + meta_name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + meta_name + " " + type + "\n";
    TextWriter w(&out, f, openmetrics);
    f.collect(w);
  }
  if (openmetrics) out += "# EOF\n";
  return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); i++) buckets_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_nanos_.fetch_add(static_cast<uint64_t>(v * 1e9), std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.buckets.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); i++) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    total += s.buckets[i];
  }
  // Buckets and count are read at slightly different moments; keep them
  // consistent for the reader (count = sum of buckets).
  s.count = total;
  s.sum = sum_nanos_.load(std::memory_order_relaxed) / 1e9;
  return s;
}

void Histogram::Reset() {
  for (size_t i = 0; i <= bounds_.size(); i++) buckets_[i] = 0;
  count_ = 0;
  sum_nanos_ = 0;
}

std::vector<double> LatencyBounds() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
          0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1,     2.5, 5, 10};
}

}  // namespace levee::observe
