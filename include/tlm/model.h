// A BERT encoder with a masked-LM or a classification head, forward and backward by hand,
// numerically the same model as Hugging Face's BertForMaskedLM / BertForSequenceClassification.
//
// Sequences are packed: batch rows are concatenated without padding, and attention stays inside
// each sequence. This equals HF with an attention mask exactly (padded keys get probability 0
// there, and padded positions never reach the loss), and it skips all work on padding.
// The last layer computes its output only at the rows the head reads ([CLS], or the masked
// positions); keys and values still come from every row, so loss and gradients are unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tlm/batch.h"
#include "tlm/config.h"
#include "tlm/device.h"
#include "tlm/params.h"

namespace tlm {

namespace kernels {
struct LiveRows;
}

// Sizes the activation buffers are allocated for, once; a batch beyond them is an error.
struct ModelLimits {
  int max_tokens = 0;   // sum of sequence lengths in one batch
  int max_seqs = 0;     // sequences in one batch
  int max_seq_len = 0;  // longest sequence (<= max_position_embeddings)
  int max_targets = 0;  // masked positions in one batch (MLM)
};

struct ForwardResult {
  double loss_sum = 0;  // sum of the per-target cross-entropies
  int64_t count = 0;    // targets: masked tokens (MLM) or sequences (classification)
  double mean_loss() const { return count ? loss_sum / count : 0.0; }
};

class BertModel {
 public:
  // The model's parameters, gradients and activations live on `backend`'s device, and every op
  // of forward and backward is issued on it.
  BertModel(const BertConfig& config, const ModelLimits& limits, std::shared_ptr<Backend> backend = default_backend());
  ~BertModel();
  BertModel(const BertModel&) = delete;
  BertModel& operator=(const BertModel&) = delete;

  const BertConfig& config() const { return config_; }
  const ModelLimits& limits() const { return limits_; }
  const ParamTable& table() const { return table_; }
  Backend& backend() const { return *backend_; }
  const std::shared_ptr<Backend>& shared_backend() const { return backend_; }
  int64_t num_params() const { return table_.total_size(); }
  // Device memory (the parameter table's layout): pass to the back end's ops, never dereference
  // outside a back end; the host copies below are for that.
  float* params();
  const float* params() const;
  float* grads();
  float* param(const std::string& name) { return params() + table_.at(name).offset; }
  float* grad(const std::string& name) { return grads() + table_.at(name).offset; }
  // Host copies of the parameters: params_to_host (num_params); set_params (count) at `offset`.
  std::vector<float> params_to_host() const;
  void set_params(const float* host, int64_t offset, int64_t count);

  // BatchNorm's running statistics (a convolutional front-end's; none otherwise), host copies in
  // the table's buffers() layout, and the count of training forwards that moved them.
  std::vector<float> buffers_to_host() const;
  void set_buffers(const float* host, int64_t offset, int64_t count);
  int64_t batches_tracked() const;
  void set_batches_tracked(int64_t count);

  // Hugging Face's _init_weights: normal(0, initializer_range) for linear and embedding weights,
  // zero biases, LayerNorm 1 / 0, zero padding row of the word embeddings; a convolutional
  // front-end keeps torch's defaults (convolutions U(+-1/sqrt(fan_in)), BatchNorm 1 / 0, running
  // mean 0 and variance 1), as their code swaps it in after HF's init. Our RNG, one stream.
  void init_weights(uint64_t seed);
  // Sets grads() to zero. Rows that only backward() can have written, and did not, are left
  // as they are (+0): a classification model's word embeddings outside the ids looked up since,
  // on a back end that skips dead rows.
  void zero_grad();
  // grads() are changed by something other than backward() at rows not flagged (a sum over
  // processes of every row, as --overlap-grads does): until the next zero_grad(), no row is known
  // to be zero. Call it before the change.
  void grads_changed_outside_backward();
  // The rows of grads() known to be +0 (those of kernels::LiveRows not flagged), for the ops that
  // can skip them (the gradient norm, AdamW); null when none are. What it says holds until the
  // next backward(), zero_grad() or flag_live_word_rows().
  const kernels::LiveRows* zero_grad_rows();
  // The host copy of zero_grad_rows()'s flags (one per word-embedding row, 1: looked up since the
  // last zero_grad()), or null when it returns null.
  const uint8_t* live_word_rows() const;
  // Flags these word-embedding rows too (`flags`: one per row, nonzero: flag it) before something
  // other than backward() writes their gradients (a sum over processes of the rows any process
  // looked up): every row left unflagged must still be +0. Only while zero_grad_rows() is not null.
  void flag_live_word_rows(const uint8_t* flags);
  // Inference from here on: the parameters stay as they are, so the back end may keep copies made
  // from them (the CPU's bf16 weights, converted once instead of at every GEMM). set_params and
  // init_weights undo it; an optimizer step on frozen weights is refused.
  void freeze_weights();

  // Runs the model on `batch`, keeps the activations, returns the summed loss. With `training`,
  // dropout is on, its masks keyed by dropout_seed (the same seed gives the same masks). `batch`
  // must live until the next forward (its uploads may still run) and through backward().
  ForwardResult forward(const Batch& batch, bool training, uint64_t dropout_seed);
  // Accumulates grad_scale * d(loss_sum)/d(params) for the last forward into grads().
  // May overwrite logits() with their gradient (classification, and MLM after an inference
  // forward; a training forward of MLM keeps what backward needs elsewhere). `final_from`, when given, is called as the
  // pass goes down the model with a falling offset: grads() from there to the end of the table are final (after the
  // head, after each layer, 0 at the end), so a data-parallel sum of those values can start while the rest is computed.
  // The work behind a call may still be queued on the device.
  void backward(float grad_scale, const std::function<void(int64_t)>& final_from = {});
  // The offsets backward reports to final_from, in order (the last is 0).
  std::vector<int64_t> gradient_report_offsets() const;

  // Logits of the last forward (device memory): MLM (m, vocab) at the masked positions in batch
  // order; classification (b, num_labels). logits_to_host copies them.
  const float* logits() const;
  std::vector<float> logits_to_host() const;
  // Inference: the model on `batch` without dropout, softmax of its logits into `probs` (host):
  // classification (b, num_labels); MLM (m, vocab) at the masked positions. The softmax is taken in
  // place on the device, so logits() holds the probabilities afterwards (backward() is refused).
  void probabilities(const Batch& batch, float* probs);
  // Floating-point operations of one forward+backward on `batch` as this engine computes it.
  double train_flops(const Batch& batch) const;
  // Whether the last layer's keys and values are absorbed into attention rather than projected at
  // every row (kernels.h): decided when the model is made, from its head, limits and back end.
  bool absorbs_last_layer() const;
  // Floating-point operations of one inference forward on `batch` (no MLM positions needed for a
  // classifier): a third of train_flops, as every counted backward op costs twice its forward.
  double forward_flops(const Batch& batch) const { return train_flops(batch) / 3.0; }

 private:
  struct Impl;
  BertConfig config_;
  ModelLimits limits_;
  ParamTable table_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Impl> impl_;  // the buffers on the device, and the host-side indexing
};

}  // namespace tlm
