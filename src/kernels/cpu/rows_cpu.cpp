#include <algorithm>
#include <cmath>

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

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i];
    params[i] *= s.decay_factor;
    m[i] = m[i] * s.beta1 + g * s.one_minus_beta1;
    v[i] = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
    const float denom = std::sqrt(v[i]) / s.bias_correction2_sqrt + s.eps;
    params[i] += -s.step_size * (m[i] / denom);
  }
}

int64_t first_nonfinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

}  // namespace tlm::kernels
