#include "cli/connection_queue.h"

#include "tlm/check.h"

namespace tlm::cli {

ConnectionQueue::ConnectionQueue(size_t threads, size_t capacity) : capacity_(capacity) {
  TLM_CHECK(threads >= 1 && capacity >= 1, "a connection queue needs a thread and room for a connection");
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ConnectionQueue::~ConnectionQueue() { shutdown(); }

void ConnectionQueue::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mutex_);
  space_free_.wait(lock, [&] { return jobs_.size() < capacity_ || shutdown_; });
  if (joined_) {  // no worker is left to take it
    lock.unlock();
    fn();
    return;
  }
  jobs_.push_back(std::move(fn));  // after shutdown began too: the workers drain the queue before they end
  lock.unlock();
  job_ready_.notify_one();
}

void ConnectionQueue::shutdown() {
  std::lock_guard<std::mutex> joining(join_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (joined_) return;
    shutdown_ = true;
  }
  job_ready_.notify_all();
  space_free_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  std::deque<std::function<void()>> left;  // given between the workers' end and now
  {
    std::lock_guard<std::mutex> lock(mutex_);
    joined_ = true;
    left.swap(jobs_);
  }
  for (auto& job : left) job();
}

size_t ConnectionQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void ConnectionQueue::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      job_ready_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
      if (jobs_.empty()) return;  // shut down and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    space_free_.notify_one();
    job();
  }
}

}  // namespace tlm::cli
