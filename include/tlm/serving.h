// A classifier service: a model or soft committee loaded once, answering texts queued by many
// callers with dynamic batching. Texts of concurrent requests are packed into one forward pass
// (at most max_batch texts; the first text of a batch waits at most max_wait_ms for company), the
// queue is bounded (a request that does not fit is refused, never buffered), and drain() answers
// everything accepted before it stops. The HTTP front (tlm serve) is a thin layer on top.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tlm/committee_runner.h"
#include "tlm/inference.h"

namespace tlm {

struct ServingOptions {
  int max_batch = 32;       // texts per forward pass
  double max_wait_ms = 2;   // how long a batch's first text waits for others
  int64_t max_queue = 256;  // texts waiting at most; a request that would exceed it is refused
  CommitteeMode mode = CommitteeMode::kSequential;
  int threads = 1;  // side-by-side members: at most this many at once
};

// One text's answer: the committee's probabilities (labels) and each member's.
struct TextAnswer {
  std::vector<float> probs;
  std::vector<std::vector<float>> members;
};

// Counters for /metrics, read under the service's lock.
struct ServingStats {
  int64_t queued_texts = 0;    // waiting now
  int64_t answered_texts = 0;  // since the start
  int64_t forward_passes = 0;
  std::vector<int64_t> batch_size_counts;  // passes per bucket of batch_size_buckets()
  double busy_seconds = 0;                 // in forward passes
};
// Upper bounds of the batch-size histogram's buckets (the last is +Inf).
const std::vector<int>& batch_size_buckets();

class ClassifierService {
 public:
  // Loads every member of `dirs` once, sized for max_batch texts of the runs' max length.
  ClassifierService(const std::vector<std::string>& dirs, const InferenceFlags& flags, const ServingOptions& options);
  ~ClassifierService();  // drains
  ClassifierService(const ClassifierService&) = delete;
  ClassifierService& operator=(const ClassifierService&) = delete;

  const Committee& committee() const { return committee_; }
  const std::vector<std::unique_ptr<BertModel>>& members() const { return members_; }
  const ServingOptions& options() const { return options_; }

  // Queues texts (a request); empty when the queue cannot take them all now (overload) or the
  // service is draining. The future holds one answer per text, in order, or the error of its pass.
  std::optional<std::future<std::vector<TextAnswer>>> submit(std::vector<std::string> texts);
  // Stops taking texts, answers every accepted one, ends the worker. Idempotent.
  void drain();
  ServingStats stats() const;

 private:
  struct Request {
    std::vector<std::string> texts;
    std::promise<std::vector<TextAnswer>> answer;
    std::chrono::steady_clock::time_point arrived;
  };
  void work();
  void answer(std::vector<Request>& requests);

  Committee committee_;
  ServingOptions options_;
  std::vector<std::unique_ptr<BertModel>> members_;
  std::unique_ptr<CommitteeRunner> runner_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;
  bool draining_ = false;
  ServingStats stats_;
  std::thread worker_;
};

}  // namespace tlm
