#include "tlm/bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/model.h"
#include "tlm/optim.h"
#include "tlm/rng.h"
#include "tlm/train_loop.h"

namespace tlm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TrainBenchResult run_train_bench(const TrainBenchOptions& opt) {
  BertConfig cfg = opt.config;
  cfg.head = opt.mlm ? Head::kMaskedLM : Head::kClassification;
  if (!opt.mlm) {
    cfg.labels.clear();
    for (int i = 0; i < opt.num_labels; ++i) cfg.labels.push_back("label" + std::to_string(i));
  }
  cfg.validate();
  TLM_CHECK(opt.seq_len >= 3 && opt.seq_len <= cfg.max_position_embeddings, "--seq {} must be in 3..{}", opt.seq_len,
            cfg.max_position_embeddings);
  TLM_CHECK(opt.batch >= 1 && opt.steps >= 1, "--batch and --steps must be positive");
  TLM_CHECK(cfg.vocab_size > 1000, "the benchmark draws token ids from 1000..vocab_size; vocab_size {} is too small",
            cfg.vocab_size);

  // Random full-length sequences: [CLS] random ids [SEP].
  Rng rng(opt.seed);
  Batch batch;
  batch.offsets.push_back(0);
  const int masked_per_seq = std::max(1, static_cast<int>(std::lround(opt.mask_prob * (opt.seq_len - 2))));
  for (int s = 0; s < opt.batch; ++s) {
    const int base = static_cast<int>(batch.ids.size());
    batch.ids.push_back(cfg.cls_token_id);
    for (int i = 1; i < opt.seq_len - 1; ++i)
      batch.ids.push_back(1000 + static_cast<int>(rng.below(cfg.vocab_size - 1000)));
    batch.ids.push_back(cfg.sep_token_id);
    batch.offsets.push_back(static_cast<int>(batch.ids.size()));
    if (opt.mlm) {
      std::vector<int> cand(opt.seq_len - 2);
      for (int i = 0; i < opt.seq_len - 2; ++i) cand[i] = base + 1 + i;
      for (int i = 0; i < masked_per_seq; ++i) {  // partial Fisher-Yates
        std::swap(cand[i], cand[i + rng.below(cand.size() - i)]);
        batch.mlm_positions.push_back(cand[i]);
        batch.mlm_labels.push_back(batch.ids[cand[i]]);
        batch.ids[cand[i]] = cfg.mask_token_id;
      }
    } else {
      batch.labels.push_back(static_cast<int>(rng.below(opt.num_labels)));
    }
  }

  ModelLimits lim{batch.num_tokens(), opt.batch, opt.seq_len, static_cast<int>(batch.mlm_positions.size())};
  BertModel model(cfg, lim, make_backend(opt.device, opt.precision));
  model.init_weights(opt.seed);
  AdamW adam(model.table(), AdamWOptions{}, model.shared_backend());

  TrainBenchResult r;
  r.params = model.num_params();
  r.threads = omp_get_max_threads();
  r.flops_per_step = model.train_flops(batch);
  r.last_layer_absorbed = model.absorbs_last_layer();
  // Under mpirun the step is the data-parallel one (--batch is the global batch, each rank
  // computes its share, the gradients are summed), and the time spent summing is measured.
  const Comm& comm = Comm::world();
  r.ranks = comm.size();
  const int64_t targets = opt.mlm ? static_cast<int64_t>(batch.mlm_positions.size()) : batch.num_seqs();
  Batch shard;
  check_data_parallel(cfg, model.backend());
  std::unique_ptr<OverlappedGradientSum> overlap;
  if (opt.overlap_grads && comm.distributed()) {
    overlap = std::make_unique<OverlappedGradientSum>(comm, bucket_floats(opt.bucket_mb));
  }
  // The GEMM ceiling before the steps and after them: other load on the machine moves it as it
  // moves the steps, so MFU is taken against the mean of the two and both are reported. Every
  // rank measures its own at the same moment (each with its share of the machine).
  comm.barrier();
  r.ceiling_before_gflops = model.backend().gemm_ceiling_gflops();
  double total = 0, comm_total = 0, summed_total = 0;
  for (int step = 0; step < opt.warmup_steps + opt.steps; ++step) {
    comm.barrier();  // every rank's step starts together
    const auto t0 = std::chrono::steady_clock::now();
    double comm_seconds = 0;
    int64_t summed = 0;
    const double loss_sum = data_parallel_gradients(model, batch, targets, opt.mlm, opt.seed + step, shard,
                                                    &comm_seconds, overlap.get(), &summed);
    const kernels::LiveRows* zero_rows = model.zero_grad_rows();
    const GradClip clip = clip_coefficient(model.backend(), model.grads(), model.num_params(), 1.0, zero_rows);
    adam.step(model.params(), model.grads(), 5e-5, clip.coefficient, zero_rows);
    model.backend().synchronize();  // the step's ops are done, not only issued
    const double dt = seconds_since(t0);
    const double loss = loss_sum / static_cast<double>(targets);
    if (step == 0) r.first_loss = loss;
    r.last_loss = loss;
    if (step >= opt.warmup_steps) {
      total += dt;
      comm_total += comm_seconds;
      summed_total += static_cast<double>(summed);
    }
  }
  const double per_step = total / opt.steps;
  r.comm_ms_per_step = comm_total / opt.steps * 1e3;
  r.values_summed = summed_total / opt.steps;
  r.ms_per_step = per_step * 1e3;
  r.tokens_per_s = batch.num_tokens() / per_step;
  r.gflops = r.flops_per_step / per_step / 1e9;
  comm.barrier();
  r.ceiling_after_gflops = model.backend().gemm_ceiling_gflops();
  r.ceiling_gflops = 0.5 * (r.ceiling_before_gflops + r.ceiling_after_gflops);
  r.backend = model.backend().describe();
  r.mfu = r.gflops / (r.ceiling_gflops * r.ranks);
  return r;
}

}  // namespace tlm
