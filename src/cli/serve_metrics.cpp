#include "cli/serve_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace tlm::cli {

namespace {

constexpr std::array<double, 13> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10};

// A histogram's lines from per-bucket counts (the last one +Inf): cumulative, as Prometheus reads them.
template <typename Bound>
void histogram(std::string& out, const std::string& name, const std::vector<Bound>& bounds,
               const std::vector<int64_t>& counts, double sum, int64_t count) {
  int64_t cumulative = 0;
  for (size_t b = 0; b < bounds.size(); ++b) {
    cumulative += counts[b];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds[b], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count, name, sum, name, count);
}

}  // namespace

ServeMetrics::ServeMetrics()
    : started_(std::chrono::steady_clock::now()), latency_counts_(kLatencyBuckets.size() + 1, 0) {}

void ServeMetrics::count(const std::string& path, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{path, status}];
}

void ServeMetrics::observe_classify(double seconds) {
  std::lock_guard lock(mutex_);
  const size_t b = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) - kLatencyBuckets.begin();
  ++latency_counts_[b];
  latency_sum_ += seconds;
  ++latency_count_;
}

std::string ServeMetrics::render(const ServingStats& service, size_t waiting_connections) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out += "# HELP tlm_requests_total HTTP requests answered, by path and status.\n";
  out += "# TYPE tlm_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("tlm_requests_total{{path=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  }
  out += "# HELP tlm_classify_seconds Time from a classification request's arrival to its answer.\n";
  out += "# TYPE tlm_classify_seconds histogram\n";
  histogram(out, "tlm_classify_seconds", std::vector<double>(kLatencyBuckets.begin(), kLatencyBuckets.end()),
            latency_counts_, latency_sum_, latency_count_);
  out += "# HELP tlm_batch_size Texts per forward pass.\n# TYPE tlm_batch_size histogram\n";
  histogram(out, "tlm_batch_size", batch_size_buckets(), service.batch_size_counts,
            static_cast<double>(service.answered_texts), service.forward_passes);
  const double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  out += fmt::format(
      "# HELP tlm_queue_texts Texts waiting for a forward pass.\n# TYPE tlm_queue_texts gauge\n"
      "tlm_queue_texts {}\n"
      "# HELP tlm_texts_total Texts classified.\n# TYPE tlm_texts_total counter\ntlm_texts_total {}\n"
      "# HELP tlm_texts_per_second Texts classified per second since the start.\n"
      "# TYPE tlm_texts_per_second gauge\ntlm_texts_per_second {}\n"
      "# HELP tlm_busy_seconds_total Seconds spent in forward passes.\n"
      "# TYPE tlm_busy_seconds_total counter\ntlm_busy_seconds_total {}\n"
      "# HELP tlm_connections_waiting Accepted connections waiting for an HTTP thread.\n"
      "# TYPE tlm_connections_waiting gauge\ntlm_connections_waiting {}\n",
      service.queued_texts, service.answered_texts, up > 0 ? service.answered_texts / up : 0.0, service.busy_seconds,
      waiting_connections);
  return out;
}

}  // namespace tlm::cli
