#include "tlm/serving.h"

#include <omp.h>

#include <algorithm>

#include "tlm/check.h"

namespace tlm {

using Clock = std::chrono::steady_clock;

const std::vector<int>& batch_size_buckets() {
  static const std::vector<int> buckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  return buckets;
}

ClassifierService::ClassifierService(const std::vector<std::string>& dirs, const InferenceFlags& flags,
                                     const ServingOptions& options)
    : committee_(dirs, flags), options_(options) {
  TLM_CHECK(options.max_batch >= 1, "the batch size must be at least 1, got {}", options.max_batch);
  TLM_CHECK(options.max_queue >= options.max_batch, "the queue ({} texts) must hold at least one batch ({})",
            options.max_queue, options.max_batch);
  TLM_CHECK(options.max_wait_ms >= 0, "the batching wait must not be negative, got {} ms", options.max_wait_ms);
  const int len = committee_.max_len();
  const ModelLimits limits{options.max_batch * len, options.max_batch, len, 0};
  std::vector<BertModel*> raw;
  for (size_t i = 0; i < dirs.size(); ++i) {
    members_.push_back(committee_.load_member(i, limits));
    raw.push_back(members_.back().get());
  }
  runner_ = std::make_unique<CommitteeRunner>(raw, options.mode, options.threads);
  stats_.batch_size_counts.assign(batch_size_buckets().size() + 1, 0);
  worker_ = std::thread([this] { work(); });
}

ClassifierService::~ClassifierService() { drain(); }

std::optional<std::future<std::vector<TextAnswer>>> ClassifierService::submit(std::vector<std::string> texts) {
  const auto n = static_cast<int64_t>(texts.size());
  std::lock_guard lock(mutex_);
  if (draining_ || stats_.queued_texts + n > options_.max_queue) return std::nullopt;
  Request r{std::move(texts), {}, Clock::now()};
  auto future = r.answer.get_future();
  queue_.push_back(std::move(r));
  stats_.queued_texts += n;
  wake_.notify_all();
  return future;
}

void ClassifierService::drain() {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    wake_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

ServingStats ClassifierService::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ClassifierService::work() {
  omp_set_num_threads(options_.threads);  // a new thread starts from the process default
  const auto wait =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(options_.max_wait_ms));
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return !queue_.empty() || draining_; });
    if (queue_.empty()) return;  // draining, and every accepted text answered
    // The first request waits for company until the batch is full or its wait is over.
    wake_.wait_until(lock, queue_.front().arrived + wait,
                     [&] { return stats_.queued_texts >= options_.max_batch || draining_; });
    // Whole requests in arrival order, up to a batch of texts (a larger request goes alone).
    std::vector<Request> take;
    int64_t texts = 0;
    while (!queue_.empty() &&
           (take.empty() || texts + static_cast<int64_t>(queue_.front().texts.size()) <= options_.max_batch)) {
      texts += static_cast<int64_t>(queue_.front().texts.size());
      take.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    stats_.queued_texts -= texts;
    lock.unlock();
    answer(take);
    lock.lock();
  }
}

void ClassifierService::answer(std::vector<Request>& requests) {
  std::vector<std::string> texts;
  for (const Request& r : requests) texts.insert(texts.end(), r.texts.begin(), r.texts.end());
  const int labels = runner_->labels();
  const size_t k = members_.size();
  std::vector<TextAnswer> answers;
  std::vector<int64_t> passes;  // texts per forward pass
  const auto t0 = Clock::now();
  try {
    answers.resize(texts.size());
    const SequenceSet set = committee_.text_set(texts);
    std::vector<float> mean;
    std::vector<int64_t> which;
    for (int64_t start = 0; start < set.size(); start += options_.max_batch) {
      which.clear();
      for (int64_t i = start; i < std::min<int64_t>(set.size(), start + options_.max_batch); ++i) which.push_back(i);
      runner_->predict(set, which, mean);
      passes.push_back(static_cast<int64_t>(which.size()));
      for (size_t w = 0; w < which.size(); ++w) {
        TextAnswer& a = answers[which[w]];
        a.probs.assign(mean.begin() + w * labels, mean.begin() + (w + 1) * labels);
        for (size_t m = 0; m < k; ++m) {
          const auto& p = runner_->member_probs(m);
          a.members.emplace_back(p.begin() + w * labels, p.begin() + (w + 1) * labels);
        }
      }
    }
  } catch (...) {
    for (Request& r : requests) r.answer.set_exception(std::current_exception());
    return;
  }
  const double busy = std::chrono::duration<double>(Clock::now() - t0).count();
  {
    std::lock_guard lock(mutex_);
    stats_.answered_texts += static_cast<int64_t>(texts.size());
    stats_.busy_seconds += busy;
    const auto& buckets = batch_size_buckets();
    for (int64_t b : passes) {
      ++stats_.forward_passes;
      const size_t bucket = std::lower_bound(buckets.begin(), buckets.end(), b) - buckets.begin();
      ++stats_.batch_size_counts[bucket];
    }
  }
  size_t at = 0;
  for (Request& r : requests) {
    std::vector<TextAnswer> mine(std::make_move_iterator(answers.begin() + at),
                                 std::make_move_iterator(answers.begin() + at + r.texts.size()));
    at += r.texts.size();
    r.answer.set_value(std::move(mine));
  }
}

}  // namespace tlm
