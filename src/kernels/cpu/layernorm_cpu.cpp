#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

// Columns [c0, c1) of LayerNorm's dgamma += sum_i dy xhat and dbeta += sum_i dy, rows in order
// (cloned per instruction set, the same float operations in every clone).
TLM_CLONES void layernorm_param_grad_columns(const float* dy, const float* x, const float* mean, const float* rstd,
                                             float* __restrict dgamma, float* __restrict dbeta, int n, int c, int c0,
                                             int c1) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + static_cast<int64_t>(i) * c;
    const float* dyi = dy + static_cast<int64_t>(i) * c;
    const float m = mean[i], r = rstd[i];
    for (int j = c0; j < c1; ++j) {
      dgamma[j] += dyi[j] * ((xi[j] - m) * r);
      dbeta[j] += dyi[j];
    }
  }
}

}  // namespace

void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int n,
                       int c, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const int64_t at = static_cast<int64_t>(i) * c;
    layernorm_row(x + at, gamma, beta, y + at, mean + i, rstd + i, c, eps);
  }
}

void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                        float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                        const uint64_t* row_keys) {
  const float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const int64_t at = static_cast<int64_t>(i) * c;
    float* xi = x + at;
    if (p > 0.0f) dropout_row(xi, c, p, scale, row_stream(key, row_keys[i]));
    const float* ri = resid + at;
    for (int j = 0; j < c; ++j) xi[j] += ri[j];
    layernorm_row(xi, gamma, beta, y + at, mean + i, rstd + i, c, eps);
  }
}

void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        float* dx, float* dgamma, float* dbeta, int n, int c) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const int64_t at = static_cast<int64_t>(i) * c;
    layernorm_backward_row(dy + at, x + at, mean[i], rstd[i], gamma, dx + at, c);
  }
  parallel_column_blocks(
      c, [&](int c0, int c1) { layernorm_param_grad_columns(dy, x, mean, rstd, dgamma, dbeta, n, c, c0, c1); });
}

}  // namespace tlm::kernels
