#include "tlm/train_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <system_error>
#include <vector>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/evaluate.h"
#include "tlm/model_io.h"

namespace tlm {

uint64_t stream_key(uint64_t seed, Stream stream, uint64_t index) {
  return mix_key(seed, static_cast<uint64_t>(stream), index);
}

namespace {

ModelLimits job_limits(const TrainJob& job) {
  const bool mlm = job.model.head == Head::kMaskedLM;
  ModelLimits lim = limits_for_set(job.train, job.options.batch, mlm, job.options.masking.mask_prob);
  for (const SequenceSet* s : {&job.valid, &job.test}) {
    if (s->size() > 0)
      lim = merge_limits(lim, limits_for_set(*s, job.options.batch, mlm, job.options.masking.mask_prob));
  }
  return lim;
}

// The warmup in the schedule's unit: steps, or epochs for a per-epoch schedule. Per epoch, a
// share rounds down (the paper's code: epochs // 100) and the warmup is capped at epochs - 1, so
// some epoch trains at a rate above 0 (epoch 0 of a warmup always has rate 0).
// A warmup beyond 2^53 (any value the schema accepts) is held there: it still keeps the rate near
// 0, and the conversion to an integer stays defined.
int64_t warmup_length(const TrainOptions& o, int64_t total_steps) {
  const double most = 9007199254740992.0;  // 2^53
  const double warmup = std::min(o.warmup, most);
  if (!o.per_epoch_schedule) {
    return warmup < 1.0 ? std::llround(warmup * static_cast<double>(total_steps)) : std::llround(warmup);
  }
  const int64_t epochs = o.epochs;
  const int64_t w =
      warmup < 1.0 ? static_cast<int64_t>(std::floor(warmup * static_cast<double>(epochs))) : std::llround(warmup);
  if (w > epochs - 1 && Comm::world().leader()) {
    fmt::print(stderr, "note: a per-epoch warmup of {} epochs is cut to {} so that some epoch trains above rate 0\n", w,
               epochs - 1);
  }
  return std::min(w, epochs - 1);
}

// grads() summed over the processes; returns how many values were summed. A classification
// model's word embeddings (rows tracked: BertModel::zero_grad_rows) are summed only at the rows
// some process looked up, while those are at most half the table: the others are +0 on every
// process, so their sums would be too. The union of the flags stays with the model either way, so
// the gradient norm and AdamW go on leaving the other rows' gradients unread. Each value has the
// same terms as in a sum of the whole buffer: the same bits at two ranks; at more, the MPI library
// may associate a sum of another length differently (as it may another bucket size).
int64_t sum_gradients_over_processes(BertModel& model, const Comm& comm) {
  float* grads = model.grads();
  const kernels::LiveRows* rows = model.zero_grad_rows();
  const uint8_t* mine = model.live_word_rows();
  if (rows == nullptr || mine == nullptr) {
    comm.sum(grads, model.num_params());
    return model.num_params();
  }
  // Kept from step to step: the packed rows reach megabytes, whose pages a fresh allocation would
  // fault in again every step.
  thread_local std::vector<int64_t> any;
  thread_local std::vector<uint8_t> flags;
  thread_local std::vector<int32_t> live;
  thread_local std::vector<float> packed;
  any.assign(mine, mine + rows->rows);
  comm.sum(any.data(), rows->rows);  // exact: every process gets the same union, so the same sums below
  flags.assign(static_cast<size_t>(rows->rows), 0);
  live.clear();
  live.reserve(static_cast<size_t>(rows->rows));
  for (int32_t r = 0; r < static_cast<int32_t>(rows->rows); ++r) {
    if (any[static_cast<size_t>(r)] > 0) {
      flags[static_cast<size_t>(r)] = 1;
      live.push_back(r);
    }
  }
  model.flag_live_word_rows(flags.data());
  const int64_t c = rows->cols, end = rows->offset + rows->rows * c;
  if (2 * static_cast<int64_t>(live.size()) > rows->rows) {  // packing would save little: every row
    comm.sum(grads, model.num_params());
    return model.num_params();
  }
  comm.sum(grads, rows->offset);
  comm.sum(grads + end, model.num_params() - end);
  // Host memory: data-parallel training runs on the CPU only (check_data_parallel). The sums go
  // back by copying (a scatter-add onto zeroed rows would turn a -0 sum into +0).
  packed.resize(live.size() * static_cast<size_t>(c));
  float* table = grads + rows->offset;
  model.backend().gather_rows(table, live.data(), packed.data(), static_cast<int>(live.size()), static_cast<int>(c));
  comm.sum(packed.data(), static_cast<int64_t>(packed.size()));
  for (size_t k = 0; k < live.size(); ++k) std::copy_n(packed.data() + k * c, c, table + int64_t{live[k]} * c);
  return model.num_params() - rows->rows * c + static_cast<int64_t>(packed.size());
}

}  // namespace

void check_backend(const BertConfig& model, const Backend& backend) {
  if (model.conv.enabled()) {
    const std::string why = backend.lacks(Backend::Feature::kConvFrontEnd);
    TLM_CHECK(why.empty(), "--device {}: {}", backend.device().name(), why);
  }
}

void check_data_parallel(const BertConfig& model, const Backend& backend) {
  if (!Comm::world().distributed()) return;
  // BatchNorm's statistics are over a batch: a shard's differ from the whole batch's.
  TLM_CHECK(!model.conv.enabled(),
            "the convolutional front-end does not train data-parallel yet (its BatchNorm statistics would "
            "be a rank's shard's, not the batch's): run it as one process");
  // Gradients are summed in host memory: a device's would need its own collectives (NCCL).
  TLM_CHECK(backend.device().kind == DeviceKind::kCpu, "data-parallel training runs on the CPU only for now ({} given)",
            backend.device().name());
}

TrainLoop::TrainLoop(const TrainJob& job)
    : job_(job),
      mlm_(job.model.head == Head::kMaskedLM),
      steps_per_epoch_((job.train.size() + job.options.batch - 1) / job.options.batch),
      total_steps_(steps_per_epoch_ * job.options.epochs),
      last_step_(job.options.max_steps > 0 ? std::min(job.options.max_steps, total_steps_) : total_steps_),
      warmup_(warmup_length(job.options, total_steps_)),
      model_(job.model, job_limits(job), job.backend ? job.backend : default_backend()),
      adam_(model_.table(), job.options.optimizer, model_.shared_backend()) {
  TLM_CHECK(job.train.size() > 0, "the training set is empty");
  check_data_parallel(job.model, model_.backend());
  TLM_CHECK(job.options.batch >= 1 && job.options.epochs >= 1, "batch and epochs must be positive");
  masking_ = job.options.masking;
  masking_.max_targets = model_.limits().max_targets;
  if (job.options.overlap_grads && Comm::world().distributed()) {
    overlap_ = std::make_unique<OverlappedGradientSum>(Comm::world(), bucket_floats(job.options.bucket_mb));
  }
}

TrainLoop::~TrainLoop() {
  // A prefetch still running reads the job and writes members: it ends before any of them does.
  if (prefetching_.valid()) prefetching_.wait();
}

void TrainLoop::init_weights() {
  model_.init_weights(stream_key(job_.options.seed, Stream::kInit));
  if (job_.init_dir.empty()) return;
  const BertConfig pre = load_config(job_.init_dir);
  TLM_CHECK(pre.vocab_size == job_.model.vocab_size && pre.hidden_size == job_.model.hidden_size &&
                pre.num_hidden_layers == job_.model.num_hidden_layers &&
                pre.num_attention_heads == job_.model.num_attention_heads &&
                pre.intermediate_size == job_.model.intermediate_size && pre.conv.layers == job_.model.conv.layers &&
                pre.conv.kernel_seq == job_.model.conv.kernel_seq &&
                pre.conv.kernel_hidden == job_.model.conv.kernel_hidden &&
                pre.conv.channels == job_.model.conv.channels && pre.conv.pad_to == job_.model.conv.pad_to,
            "{}: the pre-trained architecture differs from the fine-tuning one", job_.init_dir);
  // The pooler and classifier stay fresh, as in the paper.
  load_model_weights(model_, job_.init_dir, {LoadMode::kEncoderOnly, job_.allow_nonfinite_init});
}

void TrainLoop::load(const std::string& checkpoint_dir, int64_t step) {
  load_model_weights(model_, checkpoint_dir, {LoadMode::kExact, false});
  load_optimizer(checkpoint_dir, adam_, model_.table());
  step_ = step;
}

void TrainLoop::save(const std::string& dir) const { save_optimizer(dir, adam_, model_.table()); }

bool TrainLoop::weights_finite() const {
  return model_.backend().first_nonfinite(model_.params(), model_.num_params()) < 0;
}

double data_parallel_gradients(BertModel& model, const Batch& batch, int64_t global_targets, bool mlm,
                               uint64_t dropout_key, Batch& shard, double* comm_seconds, OverlappedGradientSum* overlap,
                               int64_t* values_summed) {
  // (2) This process's shard: every rank builds the whole batch, so masks, the target cap and the
  // global count are the one process's. A short last batch may leave a rank no sequence, or a
  // shard no masked token: it adds nothing, and still joins the sums.
  const Comm& comm = Comm::world();
  const Batch* mine = &batch;
  if (comm.distributed()) {
    const int64_t b = batch.num_seqs();
    shard_of_batch(batch, static_cast<int>(b * comm.rank() / comm.size()),
                   static_cast<int>(b * (comm.rank() + 1) / comm.size()), shard);
    mine = &shard;
  }
  // (3) Forward and backward, scaled by the global count; with `overlap`, (4) runs bucket by
  // bucket as backward finishes them (a rank without work reports them all at once).
  model.zero_grad();
  const bool sum_during = overlap != nullptr && comm.distributed();
  // (4) with `overlap` adds the other processes' gradients to every row, tracked or not
  if (sum_during) model.grads_changed_outside_backward();
  if (sum_during) overlap->begin(model.grads(), model.num_params(), model.gradient_report_offsets());
  const auto report = [&](int64_t from) {
    model.backend().synchronize();  // the values are computed, not only issued
    overlap->final_from(from);
  };
  double loss_sum = 0;
  if (mine->num_seqs() > 0 && (!mlm || !mine->mlm_positions.empty())) {
    loss_sum = model.forward(*mine, true, dropout_key).loss_sum;
    const float scale = static_cast<float>(1.0 / static_cast<double>(global_targets));
    if (sum_during) {
      model.backward(scale, report);
    } else {
      model.backward(scale);
    }
  } else if (sum_during) {
    report(0);
  }
  // (4) Gradients and losses summed over processes.
  *comm_seconds = 0;
  int64_t summed = 0;
  if (sum_during) {
    const auto t0 = std::chrono::steady_clock::now();
    overlap->finish();  // what backward did not hide, and the loss sum: the plain path's measure
    comm.sum(&loss_sum, 1);
    summed = model.num_params();
    *comm_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } else if (comm.distributed()) {
    model.backend().synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    summed = sum_gradients_over_processes(model, comm);
    comm.sum(&loss_sum, 1);
    *comm_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (values_summed != nullptr) *values_summed = summed;
  return loss_sum;
}

void TrainLoop::build_batch(int64_t step, Batch& out, std::vector<int64_t>& order, int& order_epoch) const {
  const TrainOptions& o = job_.options;
  const int epoch = epoch_of(step);
  if (epoch != order_epoch) {
    Rng shuffle(stream_key(o.seed, Stream::kShuffle, static_cast<uint64_t>(epoch)));
    order = shuffled_order(job_.train.size(), shuffle);
    order_epoch = epoch;
  }
  const int64_t begin = (step % steps_per_epoch_) * o.batch;
  const int64_t end = std::min<int64_t>(job_.train.size(), begin + o.batch);
  const std::span<const int64_t> which(order.data() + begin, static_cast<size_t>(end - begin));
  if (mlm_) {
    make_mlm_batch(job_.train, which, *job_.vocab, masking_, stream_key(o.seed, Stream::kMask, step), out);
  } else {
    make_classification_batch(job_.train, which, out);
  }
}

TrainLoop::StepResult TrainLoop::run_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainOptions& o = job_.options;
  StepResult r;
  r.epoch = epoch_of(step_);
  // (1) The global batch of this step: the one the last step prefetched, else built now.
  const int64_t prefetched = prefetched_step_;
  prefetched_step_ = -1;                         // a failed prefetch leaves no half-built batch to use
  if (prefetching_.valid()) prefetching_.get();  // done (and its error, if any, raised here)
  if (prefetched == step_) {
    current_ = 1 - current_;
  } else {
    build_batch(step_, batches_[current_], order_, order_epoch_);
  }
  const Batch& batch = batches_[current_];
  // The next step's batch, built on a thread of its own while this step computes, into the other
  // buffer: its step is done, since every step ends synchronised (below), so the model's uploads
  // of it are over. It is a pure function of the step, so prefetching changes no bit; a step not
  // taken (not finite) just rebuilds its own. Without a thread to be had, the next step builds it.
  if (o.prefetch && step_ + 1 < last_step_) {
    const int64_t next = step_ + 1;
    Batch* out = &batches_[1 - current_];
    try {
      prefetching_ = std::async(std::launch::async,
                                [this, next, out] { build_batch(next, *out, prefetch_order_, prefetch_order_epoch_); });
      prefetched_step_ = next;
    } catch (const std::system_error&) {
      // no thread now: the next step builds its batch itself
    }
  }
  const int64_t global_targets = mlm_ ? static_cast<int64_t>(batch.mlm_positions.size()) : batch.num_seqs();
  const double loss_sum =
      data_parallel_gradients(model_, batch, global_targets, mlm_, stream_key(o.seed, Stream::kDropout, step_), shard_,
                              &r.comm_seconds, overlap_.get());
  // (5) Clip and update, unless something is not finite (every rank holds the same bits, so
  // clipping and AdamW run identically everywhere).
  r.loss = loss_sum / static_cast<double>(global_targets);
  const kernels::LiveRows* zero_rows = model_.zero_grad_rows();
  const GradClip clip = clip_coefficient(model_.backend(), model_.grads(), model_.num_params(), o.clip, zero_rows);
  r.grad_norm = clip.norm;
  r.lr = o.optimizer.lr * (o.per_epoch_schedule ? linear_schedule(r.epoch, warmup_, o.epochs)
                                                : linear_schedule(step_, warmup_, total_steps_));
  r.tokens = batch.num_tokens();
  r.flops = model_.train_flops(batch);
  r.finite = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  if (r.finite) {
    adam_.step(model_.params(), model_.grads(), r.lr, clip.coefficient, zero_rows);
    ++step_;
  }
  model_.backend().synchronize();  // the step is done, not only issued, before it is timed
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace tlm
