// The counters of tlm serve, rendered in Prometheus' text format (version 0.0.4): requests by
// path and status, the latency of classification requests, and the service's own counters
// (queue depth, batch sizes, texts answered) and the connections waiting for an HTTP thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tlm/serving.h"

namespace tlm::cli {

class ServeMetrics {
 public:
  ServeMetrics();
  void count(const std::string& path, int status);  // every answered request
  void observe_classify(double seconds);            // a classification answered 200
  // `waiting_connections`: accepted connections no HTTP thread has taken yet.
  std::string render(const ServingStats& service, size_t waiting_connections) const;

 private:
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::vector<int64_t> latency_counts_;  // per bucket of kLatencyBuckets, then +Inf
  double latency_sum_ = 0;
  int64_t latency_count_ = 0;
};

}  // namespace tlm::cli
