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

void OverlappedGradientSum::begin(float* grads, int64_t n, const std::vector<int64_t>& reports) {
  std::lock_guard<std::mutex> lock(mutex_);
  TLM_CHECK(in_flight_ == 0, "a gradient sum began before the last one finished");
  TLM_CHECK(!reports.empty() && reports.back() == 0, "the reported offsets must end at 0");
  grads_ = grads;
  n_ = n;
  // Buckets end at reported offsets (as PyTorch DDP's end at parameter boundaries): from the top,
  // one closes at the first report at least a bucket below its end, the last at 0. They depend on
  // the layout alone, so every rank sums the same pieces in the same order, whenever its backward
  // reports, and each is queued the moment its lowest layer is done.
  cuts_.clear();
  int64_t end = n;
  for (const int64_t at : reports) {
    TLM_CHECK(at >= 0 && at <= end, "reported offsets must fall ({} after {})", at, end);
    if (at < end && (end - at >= bucket_ || at == 0)) {
      cuts_.push_back(at);
      end = at;
    }
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
    // After an error, or when the owner is going away (unwinding from an error of its own), the
    // rest is drained without calling MPI: the job is ending.
    const bool skip = static_cast<bool>(error_) || stop_;
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
