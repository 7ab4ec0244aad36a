// One row of dropout and of LayerNorm: the bodies the plain ops and the fused op share, so that
// fused and unfused give the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "tlm/rng.h"

namespace tlm::kernels {

// row (cols) in place: kept iff counter_uniform(stream, j) >= p, then scaled (see dropout_apply).
inline void dropout_row(float* row, int cols, float p, float scale, uint64_t stream) {
  for (int j = 0; j < cols; ++j)
    row[j] = counter_uniform(stream, static_cast<uint64_t>(j)) >= p ? row[j] * scale : 0.0f;
}

// y (c) = LayerNorm(x (c)); its mean and 1/std saved. Two passes in double: exact enough that
// eps = 1e-12 behaves as in torch.
inline void layernorm_row(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                          int c, float eps) {
  double s = 0;
  for (int j = 0; j < c; ++j) s += x[j];
  const double m = s / c;
  double v = 0;
  for (int j = 0; j < c; ++j) v += (x[j] - m) * (x[j] - m);
  const float r = static_cast<float>(1.0 / std::sqrt(v / c + eps));
  const float mf = static_cast<float>(m);
  for (int j = 0; j < c; ++j) y[j] = (x[j] - mf) * r * gamma[j] + beta[j];
  *mean = mf;
  *rstd = r;
}

}  // namespace tlm::kernels
