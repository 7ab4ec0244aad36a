#include "model/conv_front.h"

#include <fmt/format.h>

#include <algorithm>

#include "tlm/check.h"

namespace tlm {

ConvStageNames conv_stage_names(const ConvConfig& config, int stage) {
  const bool projection = stage == config.layers;
  const std::string conv = projection ? "conv.0." : fmt::format("layers.{}.", 3 * stage);
  const std::string bn = projection ? "conv.1." : fmt::format("layers.{}.", 3 * stage + 1);
  return {conv + "weight",           conv + "bias", bn + "weight", bn + "bias", bn + "running_mean", bn + "running_var",
          bn + "num_batches_tracked"};
}

ConvFrontEnd::ConvFrontEnd(Backend& backend, const ConvConfig& conv, int width, int max_tokens)
    : ConvFrontShape(conv), backend_(backend), width_(width), max_tokens_(max_tokens) {
  TLM_CHECK(config.layers >= 1 && config.channels >= 1 && config.kernel_seq >= 1 && config.kernel_hidden >= 1,
            "convolutional front-end: {} layers of {} channels, kernel {}x{}", config.layers, config.channels,
            config.kernel_seq, config.kernel_hidden);
  const int64_t pixels = int64_t{max_tokens} * width;
  int64_t scratch = 0;
  for (int s = 0; s < stages(); ++s) {
    const int64_t ch = out_channels(s);
    stages_.push_back({DeviceBuffer<float>(backend, pixels * ch), DeviceBuffer<float>(backend, pixels * ch),
                       DeviceBuffer<float>(backend, pixels * ch), DeviceBuffer<float>(backend, ch),
                       DeviceBuffer<float>(backend, ch)});
    scratch = std::max(scratch, backend.conv2d_scratch_size(shape(s)));
  }
  scratch_ = DeviceBuffer<float>(backend, scratch);
  grad_a_ = DeviceBuffer<float>(backend, pixels * config.channels);
  grad_b_ = DeviceBuffer<float>(backend, pixels * config.channels);
}

kernels::ConvShape ConvFrontEnd::shape(int stage) const {
  return {offsets_,          num_seqs_,           width_, in_channels(stage), out_channels(stage),
          kernel_seq(stage), kernel_hidden(stage)};
}

void ConvFrontEnd::forward(const float* x, float* y, const std::vector<ConvStageParams>& params, const int32_t* offsets,
                           int num_seqs, int n, bool training) {
  TLM_CHECK(static_cast<int>(params.size()) == stages(), "convolutional front-end: {} stages given, {} expected",
            params.size(), stages());
  TLM_CHECK(n <= max_tokens_, "convolutional front-end: {} rows, buffers for {}", n, max_tokens_);
  input_ = x;
  offsets_ = offsets;
  num_seqs_ = num_seqs;
  n_ = n;
  trained_ = training;
  const int64_t pixels = int64_t{n} * width_;
  const float* in = x;
  for (int s = 0; s < stages(); ++s) {
    Stage& st = stages_[s];
    const ConvStageParams& p = params[s];
    const int ch = out_channels(s);
    backend_.conv2d_forward(in, p.conv_w, p.conv_b, st.conv_out.data(), scratch_.data(), shape(s));
    if (training) {
      backend_.batchnorm_forward_train(st.conv_out.data(), p.bn_gamma, p.bn_beta, st.bn_out.data(), st.mean.data(),
                                       st.rstd.data(), p.running_mean, p.running_var, pixels, ch, kBnEps, kBnMomentum);
    } else {
      backend_.batchnorm_forward_eval(st.conv_out.data(), p.bn_gamma, p.bn_beta, p.running_mean, p.running_var,
                                      st.bn_out.data(), pixels, ch, kBnEps);
    }
    backend_.gelu_forward(st.bn_out.data(), st.act.data(), pixels * ch);
    in = st.act.data();
  }
  backend_.copy(y, in, sizeof(float) * static_cast<size_t>(pixels));
}

void ConvFrontEnd::backward(const float* dy, float* dx, const std::vector<ConvStageParams>& params,
                            const std::vector<ConvStageGrads>& grads) {
  TLM_CHECK(trained_, "convolutional front-end: backward needs a training forward (batch statistics)");
  TLM_CHECK(static_cast<int>(params.size()) == stages() && static_cast<int>(grads.size()) == stages(),
            "convolutional front-end: {} stages of parameters and {} of gradients, {} expected", params.size(),
            grads.size(), stages());
  const int64_t pixels = int64_t{n_} * width_;
  float* bufs[2] = {grad_a_.data(), grad_b_.data()};
  const float* d = dy;  // gradient of the current stage's output
  for (int s = stages() - 1; s >= 0; --s) {
    Stage& st = stages_[s];
    const int ch = out_channels(s);
    float* g = bufs[s % 2];  // d(stage output) -> d(BatchNorm output) -> d(conv output), in place
    backend_.gelu_backward(d, st.bn_out.data(), g, pixels * ch);
    backend_.batchnorm_backward(g, st.conv_out.data(), st.mean.data(), st.rstd.data(), params[s].bn_gamma, g,
                                grads[s].bn_gamma, grads[s].bn_beta, pixels, ch);
    const float* in = s == 0 ? input_ : stages_[s - 1].act.data();
    float* d_in = s == 0 ? dx : bufs[(s + 1) % 2];
    backend_.conv2d_backward(g, in, params[s].conv_w, d_in, grads[s].conv_w, grads[s].conv_b, scratch_.data(),
                             shape(s));
    d = d_in;
  }
}

}  // namespace tlm
