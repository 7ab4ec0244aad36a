// The paper's convolutional front-end (their ConvolutionLayers, block 0 of a convolutional BERT-1):
// the (n, hidden) embedding output seen as a one-channel image per sequence, then `layers` stages
// of Conv2d(c_i -> channels, kernel, padding "same") -> BatchNorm2d -> GELU, then a pointwise
// Conv2d(channels -> 1) -> BatchNorm2d(1) -> GELU, no residual. Sequences are packed: each is
// zero-padded at its own edges, and BatchNorm's statistics are over every pixel of the batch's
// tokens. Activations are channels-last (kernels.h), kept on the back end for backward.
// BatchNorm makes a sequence's output depend on the rest of its batch: the shard invariance the
// trainer's data-parallel split relies on (model.h) does not hold for this block until its
// statistics are reduced across shards, so a data-parallel mode must do that or refuse it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "tlm/config.h"

namespace tlm {

// One stage's tensors (device memory): the convolution (out, in, kh, kw), (out) and the
// BatchNorm's affine (out), (out) and running statistics (out), (out).
struct ConvStageParams {
  const float *conv_w, *conv_b, *bn_gamma, *bn_beta;
  float *running_mean, *running_var;
};
struct ConvStageGrads {
  float *conv_w, *conv_b, *bn_gamma, *bn_beta;  // accumulated
};

// A stage's tensor names in their model's state dict, under the front-end's module (their code
// puts it at bert.encoder.layer.0): layers.{3s}.* and layers.{3s+1}.* for the convolutions and
// their BatchNorms, conv.0.* and conv.1.* for the projection to one channel.
struct ConvStageNames {
  std::string conv_weight, conv_bias, bn_weight, bn_bias, running_mean, running_var, num_batches_tracked;
};
ConvStageNames conv_stage_names(const ConvConfig& config, int stage);

// The stages' geometry: the convolutions, then the pointwise projection to one channel.
struct ConvFrontShape {
  static constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;  // torch's BatchNorm2d defaults, as their code uses
  ConvConfig config;
  explicit ConvFrontShape(const ConvConfig& c) : config(c) {}
  int stages() const { return config.layers + 1; }
  int in_channels(int stage) const { return stage == 0 ? 1 : config.channels; }
  int out_channels(int stage) const { return stage == config.layers ? 1 : config.channels; }
  int kernel_seq(int stage) const { return stage == config.layers ? 1 : config.kernel_seq; }
  int kernel_hidden(int stage) const { return stage == config.layers ? 1 : config.kernel_hidden; }
};

class ConvFrontEnd : public ConvFrontShape {
 public:
  // Buffers for up to max_tokens rows of `width` hidden units; config.enabled().
  ConvFrontEnd(Backend& backend, const ConvConfig& conv, int width, int max_tokens);

  // x (n, width) -> y (n, width); offsets (num_seqs + 1) device memory. Training uses and moves
  // the batch statistics (as torch's train mode); otherwise the running statistics normalise.
  void forward(const float* x, float* y, const std::vector<ConvStageParams>& params, const int32_t* offsets,
               int num_seqs, int n, bool training);
  // dy (n, width) -> dx (n, width) overwritten; gradients accumulated. After a training forward.
  void backward(const float* dy, float* dx, const std::vector<ConvStageParams>& params,
                const std::vector<ConvStageGrads>& grads);

 private:
  kernels::ConvShape shape(int stage) const;
  struct Stage {
    DeviceBuffer<float> conv_out, bn_out, act;  // (n, width, out_ch) each
    DeviceBuffer<float> mean, rstd;             // (out_ch)
  };
  Backend& backend_;
  int width_, max_tokens_;
  std::vector<Stage> stages_;
  DeviceBuffer<float> scratch_, grad_a_, grad_b_;  // im2col blocks; two gradients of the widest stage
  const float* input_ = nullptr;                   // the last forward's x
  const int32_t* offsets_ = nullptr;
  int num_seqs_ = 0, n_ = 0;
  bool trained_ = false;  // the last forward was a training one
};

}  // namespace tlm
