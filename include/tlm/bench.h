// Training-step benchmark: random tokens through a full step (forward, backward, clipping,
// AdamW; under mpirun the data-parallel step, its gradient sums timed) of a named or given config, with model-FLOPs
// utilisation against the GEMM ceiling its back end measures (same library, same precision, same threads).
#pragma once

#include <string>

#include "tlm/config.h"
#include "tlm/device.h"

namespace tlm {

struct TrainBenchOptions {
  BertConfig config;
  std::string config_name;
  bool mlm = true;  // false: classification
  int num_labels = 4;
  int batch = 32, seq_len = 128;
  double mask_prob = 0.15;
  int warmup_steps = 1, steps = 5;
  uint64_t seed = 1;
  Device device;  // where the step computes
  Precision precision = Precision::kFp32;
  bool overlap_grads = false;  // under mpirun: the gradient sum overlapped with backward
  double bucket_mb = 25;       // its bucket
};

struct TrainBenchResult {
  double ms_per_step = 0, tokens_per_s = 0, gflops = 0, mfu = 0;
  double ceiling_gflops = 0;  // the mean of the GEMM ceilings measured before and after the steps
  double ceiling_before_gflops = 0, ceiling_after_gflops = 0;
  double flops_per_step = 0;
  bool last_layer_absorbed = false;  // its keys and values absorbed into attention (BertModel::absorbs_last_layer)
  double comm_ms_per_step = 0;       // of ms_per_step, summing gradients over ranks (0 for one process)
  double values_summed = 0;          // gradient values summed over the ranks per step (0 for one process)
  int ranks = 1;                     // processes computing the step (mpirun)
  int64_t params = 0;
  int threads = 0;
  double first_loss = 0, last_loss = 0;
  std::string backend;  // the back end's description (device, precision, GEMM library)
};

TrainBenchResult run_train_bench(const TrainBenchOptions& opt);

}  // namespace tlm
