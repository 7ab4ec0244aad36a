#include "tlm/optim.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/safetensors.h"

namespace tlm {

struct AdamW::Moments {
  DeviceBuffer<float> m, v;  // exp_avg, exp_avg_sq (the table's size)
};

AdamW::AdamW(const ParamTable& table, const AdamWOptions& options, std::shared_ptr<Backend> backend)
    : opt_(options), backend_(std::move(backend)) {
  TLM_CHECK(backend_ != nullptr, "AdamW needs a back end");
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
  moments_ = std::make_unique<Moments>(
      Moments{DeviceBuffer<float>(*backend_, table.total_size()), DeviceBuffer<float>(*backend_, table.total_size())});
}

AdamW::~AdamW() = default;

std::vector<float> AdamW::exp_avg_to_host() const {
  std::vector<float> host(static_cast<size_t>(moments_->m.size()));
  moments_->m.download(host.data(), moments_->m.size());
  return host;
}

std::vector<float> AdamW::exp_avg_sq_to_host() const {
  std::vector<float> host(static_cast<size_t>(moments_->v.size()));
  moments_->v.download(host.data(), moments_->v.size());
  return host;
}

void AdamW::set_moments(const std::vector<float>& exp_avg, const std::vector<float>& exp_avg_sq) {
  TLM_CHECK(static_cast<int64_t>(exp_avg.size()) == moments_->m.size() &&
                static_cast<int64_t>(exp_avg_sq.size()) == moments_->v.size(),
            "AdamW moments of {} and {} values for {} parameters", exp_avg.size(), exp_avg_sq.size(),
            moments_->m.size());
  moments_->m.upload(exp_avg.data(), moments_->m.size());
  moments_->v.upload(exp_avg_sq.data(), moments_->v.size());
  backend_->synchronize();
}

void AdamW::step(float* params, const float* grads, double lr, float grad_scale, const kernels::LiveRows* zero_rows) {
  ++step_;
  // torch's _single_tensor_adamw, in float32 with the scalars computed in double as Python does.
  const double bias_correction1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(step_));
  kernels::AdamWScalars scalars{};
  scalars.beta1 = static_cast<float>(opt_.beta1);
  scalars.beta2 = static_cast<float>(opt_.beta2);
  scalars.one_minus_beta1 = static_cast<float>(1.0 - opt_.beta1);
  scalars.one_minus_beta2 = static_cast<float>(1.0 - opt_.beta2);
  scalars.step_size = static_cast<float>(lr / bias_correction1);
  scalars.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  scalars.eps = static_cast<float>(opt_.eps);
  scalars.grad_scale = grad_scale;
  for (const Range& r : ranges_) {
    scalars.decay_factor = r.decay ? static_cast<float>(1.0 - lr * opt_.weight_decay) : 1.0f;
    float *p = params + r.begin, *m = moments_->m.data() + r.begin, *v = moments_->v.data() + r.begin;
    const float* g = grads + r.begin;
    if (zero_rows != nullptr && zero_rows->offset >= r.begin &&
        zero_rows->offset + zero_rows->rows * zero_rows->cols <= r.end) {  // the rows lie in this range
      LiveRows z = *zero_rows;
      z.offset -= r.begin;
      backend_->adamw_update_live(p, g, m, v, r.end - r.begin, scalars, z);
    } else {
      backend_->adamw_update(p, g, m, v, r.end - r.begin, scalars);
    }
  }
}

double linear_schedule(int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  return std::max(0.0, static_cast<double>(total_steps - step) /
                           static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
}

GradClip clip_coefficient(Backend& backend, const float* grads, int64_t n, double max_norm,
                          const kernels::LiveRows* zero_rows) {
  const double sum =
      zero_rows != nullptr ? backend.sum_squares_live(grads, n, *zero_rows) : backend.sum_squares(grads, n);
  GradClip c{std::sqrt(sum), 1.0f};
  if (max_norm > 0) {
    const double coef = max_norm / (c.norm + 1e-6);
    if (coef < 1.0) c.coefficient = static_cast<float>(coef);
  }
  return c;
}

double clip_grad_norm(Backend& backend, float* grads, int64_t n, double max_norm) {
  const GradClip c = clip_coefficient(backend, grads, n, max_norm);
  if (c.coefficient != 1.0f) backend.scale_inplace(grads, c.coefficient, n);
  return c.norm;
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
  const std::vector<float> m = opt.exp_avg_to_host(), v = opt.exp_avg_sq_to_host();
  for (const auto& e : table.entries()) {
    file.add_f32("exp_avg." + e.name, e.shape, m.data() + e.offset);
    file.add_f32("exp_avg_sq." + e.name, e.shape, v.data() + e.offset);
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
  std::vector<float> m(static_cast<size_t>(table.total_size())), v(m.size());
  for (const auto& e : table.entries()) {
    for (auto [prefix, buf] : {std::pair{"exp_avg.", &m}, std::pair{"exp_avg_sq.", &v}}) {
      const SafeTensor& t = file.at(prefix + e.name, path);
      if (t.dtype != "F32" || t.shape != e.shape) {
        throw Error(fmt::format("{}: tensor \"{}{}\" has the wrong dtype or shape", path, prefix, e.name));
      }
      std::memcpy(buf->data() + e.offset, t.bytes.data(), t.bytes.size());
    }
  }
  opt.set_moments(m, v);
  opt.set_steps_taken(std::stoll(meta("step")));
}

}  // namespace tlm
