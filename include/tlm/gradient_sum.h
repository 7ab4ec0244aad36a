// The data-parallel gradient sum overlapped with the backward pass (--overlap-grads): the model
// reports which tail of the gradient buffer is final (BertModel::backward's final_from: after the
// head, after each layer); the buffer is cut at those offsets into buckets of at least
// `bucket_floats` values (the last, from 0, holding the rest), and a communication thread sums
// each bucket over the ranks (Comm::sum, so every rank holds the same bits) as soon as it is final,
// while the main thread computes the layers below. The buckets depend only on the model's layout,
// never on timing or on when a rank reports, so every rank issues the same collectives and a run
// repeats bit for bit. What can be hidden is all but the last bucket: the embeddings (whose word
// table the tied MLM decoder and the lookup both write) are final only at the very end. Only the communication thread
// calls MPI between begin() and finish(); the main thread calls it again only after finish().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace tlm {

class Comm;

// The floats of a bucket of `mb` megabytes (2^20 bytes) of fp32, at least one.
int64_t bucket_floats(double mb);

class OverlappedGradientSum {
 public:
  // bucket_floats: bucket_floats(25) is PyTorch DDP's default bucket.
  OverlappedGradientSum(const Comm& comm, int64_t bucket_floats);
  ~OverlappedGradientSum();
  OverlappedGradientSum(const OverlappedGradientSum&) = delete;
  OverlappedGradientSum& operator=(const OverlappedGradientSum&) = delete;

  // A new step over grads (n floats, host memory); `reports`: the offsets final_from will be
  // given, falling, ending at 0 (BertModel::gradient_report_offsets).
  void begin(float* grads, int64_t n, const std::vector<int64_t>& reports);
  // grads[offset, n) is final (offsets fall from call to call; 0 ends the step's reports).
  void final_from(int64_t offset);
  // Waits until every bucket is summed; rethrows the communication thread's error. Returns the
  // seconds the caller waited (the part of the sum the backward pass did not hide).
  double finish();
  // Where the buckets of the step begin, from the top down (after begin()).
  const std::vector<int64_t>& bucket_starts() const { return cuts_; }

 private:
  void loop();

  const Comm& comm_;
  const int64_t bucket_;
  float* grads_ = nullptr;
  int64_t n_ = 0;
  std::vector<int64_t> cuts_;  // where each bucket begins, from the top of the buffer down
  size_t next_ = 0;            // the first bucket not queued yet
  int64_t reported_ = 0;       // grads[reported_, n) is final
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::deque<std::pair<int64_t, int64_t>> queue_;  // [begin, end) ranges to sum, in order
  int64_t in_flight_ = 0;                          // ranges queued or being summed
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace tlm
