#include "tlm/gradient_sum.h"

#include <algorithm>
#include <chrono>

#include "tlm/check.h"
#include "tlm/comm.h"

namespace tlm {

int64_t bucket_floats(double mb) { return std::max<int64_t>(1, static_cast<int64_t>(mb * 1024 * 1024 / 4)); }

OverlappedGradientSum::OverlappedGradientSum(const Comm& comm, int64_t bucket_floats)
    : comm_(comm), bucket_(bucket_floats) {
  TLM_CHECK(bucket_ >= 1, "a gradient bucket must hold at least one value ({} given)", bucket_);
  TLM_CHECK(comm.serialized_threads(),
            "--overlap-grads needs an MPI library that lets a second thread call it (MPI_THREAD_SERIALIZED); this "
            "one does not: run without it");
  thread_ = std::thread([this] { loop(); });
}

OverlappedGradientSum::~OverlappedGradientSum() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void OverlappedGradientSum::begin(float* grads, int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  TLM_CHECK(in_flight_ == 0, "a gradient sum began before the last one finished");
  grads_ = grads;
  n_ = n;
  // The buckets depend on n alone (every rank sums the same pieces in the same order, whenever
  // its backward reports): bucket-sized pieces from the top, the last one [0, ...) holding the
  // rest (between one and two buckets, or all of a buffer under one bucket).
  cuts_.clear();
  for (int64_t end = n; end > 0;) {
    const int64_t begin = end - bucket_ >= bucket_ ? end - bucket_ : 0;
    cuts_.push_back(begin);
    end = begin;
  }
  next_ = 0;
  reported_ = n;
}

void OverlappedGradientSum::final_from(int64_t offset) {
  std::unique_lock<std::mutex> lock(mutex_);
  TLM_CHECK(offset >= 0 && offset <= reported_, "gradient offsets must fall ({} after {})", offset, reported_);
  reported_ = offset;
  bool queued = false;
  while (next_ < cuts_.size() && cuts_[next_] >= offset) {
    const int64_t end = next_ == 0 ? n_ : cuts_[next_ - 1];
    queue_.emplace_back(cuts_[next_], end);
    ++next_;
    ++in_flight_;
    queued = true;
  }
  lock.unlock();
  if (queued) wake_.notify_one();
}

double OverlappedGradientSum::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  TLM_CHECK(next_ == cuts_.size() || error_, "finish() before every gradient was reported final (down to {})",
            reported_);
  done_.wait(lock, [this] { return in_flight_ == 0; });
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void OverlappedGradientSum::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    const auto [begin, end] = queue_.front();
    queue_.pop_front();
    const bool skip = static_cast<bool>(error_);  // after an error, drain without calling MPI
    float* grads = grads_;
    lock.unlock();
    try {
      if (!skip) comm_.sum(grads + begin, end - begin);
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      lock.unlock();
    }
    lock.lock();
    --in_flight_;
    if (in_flight_ == 0) done_.notify_all();
  }
}

}  // namespace tlm
