#include "tlm/optim.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/kernels.h"
#include "tlm/check.h"
#include "tlm/safetensors.h"

namespace tlm {

AdamW::AdamW(const ParamTable& table, const AdamWOptions& options) : opt_(options) {
  for (const auto& e : table.entries()) {
    bool decay = true;
    for (const auto& pat : opt_.no_decay) {
      if (e.name.find(pat) != std::string::npos) decay = false;
    }
    if (!ranges_.empty() && ranges_.back().decay == decay && ranges_.back().end == e.offset) {
      ranges_.back().end = e.offset + e.size;
    } else {
      ranges_.push_back({e.offset, e.offset + e.size, decay});
    }
  }
  m_.assign(table.total_size(), 0.0f);
  v_.assign(table.total_size(), 0.0f);
}

void AdamW::step(float* params, const float* grads, double lr) {
  ++step_;
  // torch's _single_tensor_adamw, in float32 with the scalars computed in double as Python does.
  const float beta1 = static_cast<float>(opt_.beta1), beta2 = static_cast<float>(opt_.beta2);
  const double bias_correction1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(step_));
  const float step_size = static_cast<float>(lr / bias_correction1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = static_cast<float>(opt_.eps);
  const float one_minus_b1 = static_cast<float>(1.0 - opt_.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - opt_.beta2);
  float* m = m_.data();
  float* v = v_.data();
  for (const Range& r : ranges_) {
    const float decay_factor = r.decay ? static_cast<float>(1.0 - lr * opt_.weight_decay) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int64_t i = r.begin; i < r.end; ++i) {
      const float g = grads[i];
      params[i] *= decay_factor;
      m[i] = m[i] * beta1 + g * one_minus_b1;
      v[i] = v[i] * beta2 + one_minus_b2 * g * g;
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      params[i] += -step_size * (m[i] / denom);
    }
  }
}

double linear_schedule(int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  return std::max(0.0, static_cast<double>(total_steps - step) /
                           static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
}

double clip_grad_norm(float* grads, int64_t n, double max_norm) {
  const double norm = std::sqrt(kernels::sum_squares(grads, n));
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) kernels::scale_inplace(grads, static_cast<float>(coef), n);
  }
  return norm;
}

namespace {

std::string optimizer_file(const std::string& dir) {
  return (std::filesystem::path(dir) / "optimizer.safetensors").string();
}

}  // namespace

void save_optimizer(const std::string& dir, const AdamW& opt, const ParamTable& table) {
  std::filesystem::create_directories(dir);
  SafeTensorsFile file;
  file.metadata["format"] = "tlm-adamw";
  file.metadata["version"] = std::to_string(kOptimizerStateVersion);
  file.metadata["step"] = std::to_string(opt.steps_taken());
  for (const auto& e : table.entries()) {
    file.add_f32("exp_avg." + e.name, e.shape, opt.exp_avg().data() + e.offset);
    file.add_f32("exp_avg_sq." + e.name, e.shape, opt.exp_avg_sq().data() + e.offset);
  }
  write_safetensors(optimizer_file(dir), file);
}

void load_optimizer(const std::string& dir, AdamW& opt, const ParamTable& table) {
  const std::string path = optimizer_file(dir);
  const SafeTensorsFile file = read_safetensors(path);
  auto meta = [&](const char* key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw Error(fmt::format("{}: metadata lacks \"{}\"", path, key));
    return it->second;
  };
  if (meta("format") != "tlm-adamw") throw Error(path + ": not a tlm optimizer state (format " + meta("format") + ")");
  if (meta("version") != std::to_string(kOptimizerStateVersion)) {
    throw Error(fmt::format("{}: optimizer state version {} is not supported (this tlm reads version {})", path,
                            meta("version"), kOptimizerStateVersion));
  }
  for (const auto& e : table.entries()) {
    for (auto [prefix, buf] : {std::pair{"exp_avg.", &opt.exp_avg()}, std::pair{"exp_avg_sq.", &opt.exp_avg_sq()}}) {
      const SafeTensor& t = file.at(prefix + e.name, path);
      if (t.dtype != "F32" || t.shape != e.shape) {
        throw Error(fmt::format("{}: tensor \"{}{}\" has the wrong dtype or shape", path, prefix, e.name));
      }
      std::memcpy(buf->data() + e.offset, t.bytes.data(), t.bytes.size());
    }
  }
  opt.set_steps_taken(std::stoll(meta("step")));
}

}  // namespace tlm
