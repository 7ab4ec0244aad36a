// The state of one training run and its step.
//
// A step: (1) the global batch of the step: sequences from one seeded shuffle per epoch, MLM masks
// keyed by (seed, step, sequence index, position); (2) this process's shard of it (all of it for
// one process); (3) forward and backward with the loss scale of the *global* count of targets,
// passed in; (4) reduce gradients and counts over processes (nothing to do for one process);
// (5) clip and AdamW. Dropout is keyed by (seed, step, sequence index, position) too, so any split
// of a batch computes the same step: a data-parallel version changes only (2) and (4).
#pragma once

#include <cstdint>
#include <future>
#include <string>

#include "tlm/gradient_sum.h"
#include "tlm/model.h"
#include "tlm/optim.h"
#include "tlm/trainer.h"

namespace tlm {

// The random streams of a run, each a pure function of (seed, stream, step or epoch).
enum class Stream : uint64_t { kInit = 1, kShuffle = 2, kMask = 3, kDropout = 4, kValidation = 6 };
uint64_t stream_key(uint64_t seed, Stream stream, uint64_t index = 0);

// Refuses what the back end cannot compute (the convolutional front-end on a GPU), naming the
// device; a job checks it before it writes anything.
void check_backend(const BertConfig& model, const Backend& backend);

// Refuses, when this process is one of several ranks, what does not train data-parallel yet (the
// convolutional front-end, a device other than the CPU). The loop checks it; a job checks it
// first, before it writes anything.
void check_data_parallel(const BertConfig& model, const Backend& backend);

// (2)-(4) of a step: this process's contiguous share of `batch` (all of it for one process)
// forward and backward with the loss scale of the whole batch's `global_targets`, then gradients
// and the loss summed over the processes, so every rank holds the same bits. `shard` is scratch.
// Returns the whole batch's loss sum; *comm_seconds gets the time spent summing (0 alone).
// With `overlap` (several ranks), the sum runs bucket by bucket during backward and
// *comm_seconds is the wait after backward (what it did not hide, and the loss sum).
// *values_summed (when given) gets how many gradient values were summed over the processes: all
// of them, fewer where a classifier's word-embedding rows no process looked up are left out, 0
// for one process.
double data_parallel_gradients(BertModel& model, const Batch& batch, int64_t global_targets, bool mlm,
                               uint64_t dropout_key, Batch& shard, double* comm_seconds,
                               OverlappedGradientSum* overlap = nullptr, int64_t* values_summed = nullptr);

class TrainLoop {
 public:
  // Sizes the model for the job's training and evaluation sets. `job` must outlive the loop.
  explicit TrainLoop(const TrainJob& job);
  ~TrainLoop();
  TrainLoop(const TrainLoop&) = delete;
  TrainLoop& operator=(const TrainLoop&) = delete;

  BertModel& model() { return model_; }
  const AdamW& optimizer() const { return adam_; }
  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return total_steps_; }  // of the schedule (all epochs)
  int64_t last_step() const { return last_step_; }      // where this run stops (max_steps)
  int epoch_of(int64_t step) const { return static_cast<int>(step / steps_per_epoch_); }
  const MaskingOptions& masking() const { return masking_; }

  // A fresh run: the seeded initialisation, then the --init run's encoder.
  void init_weights();
  // Continues from a checkpoint folder taken at `step`: weights and optimizer state.
  void load(const std::string& checkpoint_dir, int64_t step);
  // Saves weights and optimizer state into dir (a checkpoint being written).
  void save(const std::string& dir) const;

  struct StepResult {
    bool finite = true;  // false: loss or gradient norm not finite, and no update was made
    double loss = 0;     // mean over the step's targets
    double grad_norm = 0, lr = 0, seconds = 0, flops = 0;
    double comm_seconds = 0;  // of `seconds`, summing over processes
    int epoch = 0, tokens = 0;
  };
  // One optimizer step (the step counter advances only when the result is finite).
  StepResult run_step();
  bool weights_finite() const;

 private:
  const TrainJob& job_;
  const bool mlm_;
  int64_t steps_per_epoch_, total_steps_, last_step_, warmup_;
  MaskingOptions masking_;
  BertModel model_;
  AdamW adam_;
  std::unique_ptr<OverlappedGradientSum> overlap_;  // --overlap-grads under mpirun
  int64_t step_ = 0;
  // The global batch of `step` into `out`; `order` caches the shuffle of epoch `order_epoch`.
  void build_batch(int64_t step, Batch& out, std::vector<int64_t>& order, int& order_epoch) const;

  Batch batches_[2];            // the step's whole batch, and the next one's when prefetched
  int current_ = 0;             // which of batches_ the step uses
  Batch shard_;                 // this rank's share of it (data-parallel)
  std::vector<int64_t> order_;  // the shuffle of order_epoch_
  int order_epoch_ = -1;
  // --prefetch: the next step's batch built on a thread while a step computes (the future last,
  // and waited for by the destructor, so the thread never outlives what it uses)
  int64_t prefetched_step_ = -1;
  std::vector<int64_t> prefetch_order_;  // the prefetching thread's own shuffle cache
  int prefetch_order_epoch_ = -1;
  std::future<void> prefetching_;
};

}  // namespace tlm
