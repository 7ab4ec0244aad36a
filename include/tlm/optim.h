// AdamW with PyTorch's semantics (torch.optim.AdamW, amsgrad off), a linear warmup/decay
// schedule as Hugging Face's get_linear_schedule_with_warmup, and global-norm clipping as
// torch.nn.utils.clip_grad_norm_.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tlm/device.h"
#include "tlm/params.h"

namespace tlm {

namespace kernels {
struct LiveRows;
}

struct AdamWOptions {
  double lr = 5e-5;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;
  // Parameters whose name contains any of these substrings get no weight decay
  // (the paper decays everything: empty; HF examples often use {"bias", "LayerNorm.weight"}).
  std::vector<std::string> no_decay;
};

class AdamW {
 public:
  // The moments live on `backend`'s device, beside the parameters they update.
  AdamW(const ParamTable& table, const AdamWOptions& options, std::shared_ptr<Backend> backend = default_backend());
  ~AdamW();

  // One update of every parameter at learning rate `lr` (the schedule's value for this step);
  // params and grads are device memory in the table's layout. The gradient used is grads *
  // grad_scale (clip_coefficient's value: clipping without a pass of its own over grads).
  // With zero_rows (BertModel::zero_grad_rows()), grads' rows known to be +0 are not read: the
  // same update.
  void step(float* params, const float* grads, double lr, float grad_scale = 1.0f,
            const kernels::LiveRows* zero_rows = nullptr);

  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t s) { step_ = s; }
  // Host copies of the moments (the table's size), and setting them from the host.
  std::vector<float> exp_avg_to_host() const;
  std::vector<float> exp_avg_sq_to_host() const;
  void set_moments(const std::vector<float>& exp_avg, const std::vector<float>& exp_avg_sq);
  const AdamWOptions& options() const { return opt_; }

 private:
  struct Range {
    int64_t begin, end;
    bool decay;
  };
  struct Moments;  // device buffers
  AdamWOptions opt_;
  std::vector<Range> ranges_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Moments> moments_;
  int64_t step_ = 0;
};

// lr multiplier for optimizer step `step` (0-based, the value used by that step, as HF's
// LambdaLR): step / warmup during warmup, then linear decay to 0 at total_steps.
double linear_schedule(int64_t step, int64_t warmup_steps, int64_t total_steps);

// Scales grads (n, device memory of `backend`) so their global L2 norm is at most max_norm (if
// max_norm > 0); returns the norm before clipping. Same formula as torch:
// coef = max_norm / (norm + 1e-6), applied if < 1.
double clip_grad_norm(Backend& backend, float* grads, int64_t n, double max_norm);
// The same clipping left to AdamW::step: grads' global L2 norm (before clipping) and the
// coefficient that clip_grad_norm would scale them by (1 if none), as a float; step(...,
// coefficient) then gives clip_grad_norm-then-step's bits without a pass over grads.
struct GradClip {
  double norm;
  float coefficient;
};
// With zero_rows (BertModel::zero_grad_rows()), grads' rows known to be +0 are not read: the same
// norm.
GradClip clip_coefficient(Backend& backend, const float* grads, int64_t n, double max_norm,
                          const kernels::LiveRows* zero_rows = nullptr);

// The optimizer's state (AdamW moments and step count) as optimizer.safetensors in dir,
// versioned: another version is refused with a clear message.
constexpr int kOptimizerStateVersion = 1;
void save_optimizer(const std::string& dir, const AdamW& opt, const ParamTable& table);
void load_optimizer(const std::string& dir, AdamW& opt, const ParamTable& table);

}  // namespace tlm
