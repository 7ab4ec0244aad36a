#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < count; ++i) {
    const float* s = src + int64_t{rows[i]} * c;
    std::copy(s, s + c, dst + int64_t{i} * c);
  }
}

void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c) {
  // The rows are distinct, so threads never write the same row.
#pragma omp parallel for schedule(static)
  for (int i = 0; i < count; ++i) {
    float* d = dst + int64_t{rows[i]} * c;
    const float* s = src + int64_t{i} * c;
    for (int j = 0; j < c; ++j) d[j] += s[j];
  }
}

namespace {

// One span of the AdamW update (the vectors do not overlap; cloned per instruction set: the same
// IEEE operations in every clone, so the same bits).
TLM_CLONES void adamw_span(float* __restrict params, const float* __restrict grads, float* __restrict m,
                           float* __restrict v, int64_t n, const AdamWScalars& s) {
  const float decay = s.decay_factor, b1 = s.beta1, c1 = s.one_minus_beta1, b2 = s.beta2, c2 = s.one_minus_beta2;
  const float bc2 = s.bias_correction2_sqrt, eps = s.eps, step = s.step_size, clip = s.grad_scale;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * clip;
    const float mi = m[i] * b1 + g * c1;
    const float vi = v[i] * b2 + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2 + eps;
    params[i] = params[i] * decay + -step * (mi / denom);
  }
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { adamw_span(params + b, grads + b, m + b, v + b, e - b, s); });
}

int64_t first_nonfinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

}  // namespace tlm::kernels
