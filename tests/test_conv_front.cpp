// The convolutional front-end against its PyTorch mirror (ref/make_conv_golden.py: the paper's
// ConvolutionLayers on packed sequences): the training forward, the gradient of the input and of
// every parameter, the moved running statistics, and the inference forward with them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "golden_fixture.h"
#include "model/conv_front.h"
#include "tlm/safetensors.h"

namespace tlm::testing {
namespace {

struct Case {
  const SafeTensorsFile* file;
  std::string name;
  std::vector<float> get(const std::string& key) const { return file->at(name + "." + key, "fixture").to_floats(); }
};

// What fp32 against torch's fp32 may differ by: the same sums in another order (~1e-6 relative),
// through BatchNorm's division by a batch standard deviation and up to three stages.
constexpr double kTol = 2e-5;

TEST(ConvFrontGolden, TrainingForwardGradientsStatisticsAndInferenceMatchPyTorch) {
  const SafeTensorsFile file = read_safetensors(source_dir() + "/tests/golden/conv_front.safetensors");
  for (const std::string name : {"k4x3_d3", "k3_d4"}) {
    SCOPED_TRACE(name);
    const Case c{&file, name};
    std::istringstream config(file.metadata.at(name + ".config"));
    ConvConfig cfg;
    int width = 0;
    config >> cfg.layers >> cfg.kernel_seq >> cfg.kernel_hidden >> cfg.channels >> width;
    const std::vector<int32_t> lengths = file.at(name + ".lengths", "fixture").to_ints();
    std::vector<int32_t> offsets{0};
    for (int32_t len : lengths) offsets.push_back(offsets.back() + len);
    const int n = offsets.back();

    auto backend = default_backend();
    ConvFrontEnd front(*backend, cfg, width, n);
    // Every tensor on the device: parameters, their gradients (zero), running statistics.
    std::vector<DeviceBuffer<float>> keep;
    auto upload = [&](const std::vector<float>& host) {
      keep.emplace_back(*backend, static_cast<int64_t>(host.size()));
      keep.back().upload(host.data(), static_cast<int64_t>(host.size()));
      return keep.back().data();
    };
    std::vector<ConvStageParams> params;
    std::vector<ConvStageGrads> grads;
    std::vector<std::pair<std::string, float*>> grad_of, stats_of;
    for (int s = 0; s < front.stages(); ++s) {
      const ConvStageNames nm = conv_stage_names(cfg, s);
      ConvStageParams p{};
      ConvStageGrads g{};
      p.conv_w = upload(c.get("param." + nm.conv_weight));
      p.conv_b = upload(c.get("param." + nm.conv_bias));
      p.bn_gamma = upload(c.get("param." + nm.bn_weight));
      p.bn_beta = upload(c.get("param." + nm.bn_bias));
      p.running_mean = upload(c.get("param." + nm.running_mean));
      p.running_var = upload(c.get("param." + nm.running_var));
      for (auto [slot, key] : {std::pair{&g.conv_w, nm.conv_weight}, std::pair{&g.conv_b, nm.conv_bias},
                               std::pair{&g.bn_gamma, nm.bn_weight}, std::pair{&g.bn_beta, nm.bn_bias}}) {
        *slot = upload(std::vector<float>(c.get("param." + key).size(), 0.0f));
        grad_of.emplace_back(key, *slot);
      }
      stats_of.emplace_back(nm.running_mean, p.running_mean);
      stats_of.emplace_back(nm.running_var, p.running_var);
      params.push_back(p);
      grads.push_back(g);
    }
    const std::vector<float> x = c.get("x"), r = c.get("r");
    const float* x_dev = upload(x);
    DeviceBuffer<int32_t> off(*backend, static_cast<int64_t>(offsets.size()));
    off.upload(offsets.data(), static_cast<int64_t>(offsets.size()));
    float* y = upload(std::vector<float>(x.size(), 0.0f));
    float* r_dev = upload(r);
    float* dx = upload(std::vector<float>(x.size(), 9.0f));

    front.forward(x_dev, y, params, off.data(), static_cast<int>(lengths.size()), n, true);
    std::vector<float> host(x.size());
    backend->download(host.data(), y, sizeof(float) * host.size());
    EXPECT_LE(rel_error(host.data(), c.get("y_train").data(), n * width), kTol) << "training output";

    front.backward(r_dev, dx, params, grads);
    backend->download(host.data(), dx, sizeof(float) * host.size());
    EXPECT_LE(rel_error(host.data(), c.get("grad.x").data(), n * width), kTol) << "input gradient";
    double largest = 0;  // the largest gradient entry of any parameter, for the biases below
    for (const auto& [key, ptr] : grad_of) {
      for (float v : c.get("grad." + key)) largest = std::max(largest, std::fabs(double{v}));
    }
    for (const auto& [key, ptr] : grad_of) {
      const std::vector<float> want = c.get("grad." + key);
      std::vector<float> got(want.size());
      backend->download(got.data(), ptr, sizeof(float) * got.size());
      if (!conv_weight_of_bias(cfg, key).empty()) {
        // A training BatchNorm subtracts each channel's mean, so the bias before it has gradient 0;
        // torch and tlm both return rounding noise, equal in size, not in value.
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_LE(std::fabs(got[i]), 1e-5 * largest) << key;
          EXPECT_LE(std::fabs(want[i]), 1e-5 * largest) << key;
        }
        continue;
      }
      EXPECT_LE(rel_error(got.data(), want.data(), static_cast<int64_t>(want.size())), kTol) << "gradient of " << key;
    }
    for (const auto& [key, ptr] : stats_of) {
      const std::vector<float> want = c.get("after." + key);
      std::vector<float> got(want.size());
      backend->download(got.data(), ptr, sizeof(float) * got.size());
      EXPECT_LE(rel_error(got.data(), want.data(), static_cast<int64_t>(want.size())), kTol) << key;
    }

    front.forward(x_dev, y, params, off.data(), static_cast<int>(lengths.size()), n, false);
    backend->download(host.data(), y, sizeof(float) * host.size());
    EXPECT_LE(rel_error(host.data(), c.get("y_eval").data(), n * width), kTol) << "inference output";
    EXPECT_THROW(front.backward(r_dev, dx, params, grads), Error) << "backward after an inference forward";
  }
}

}  // namespace
}  // namespace tlm::testing
