// One row of dropout and of LayerNorm: the bodies the plain ops and the fused op share, so that
// fused and unfused give the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu/vec_math.h"
#include "tlm/rng.h"

namespace tlm::kernels {

// out (cols) = in (cols) after dropout: kept iff counter_uniform(stream, j) >= p, then scaled (see
// dropout_apply); out may be in. Cloned per instruction set: AVX-512 multiplies 64-bit lanes
// (splitmix64), the others cannot; integer hashing and one multiply per value give the same bits
// in every clone.
TLM_CLONES inline void dropout_row_to(const float* in, float* out, int cols, float p, float scale, uint64_t stream) {
  for (int j = 0; j < cols; ++j) out[j] = counter_uniform(stream, static_cast<uint64_t>(j)) >= p ? in[j] * scale : 0.0f;
}

// row (cols) in place, as dropout_row_to.
inline void dropout_row(float* row, int cols, float p, float scale, uint64_t stream) {
  dropout_row_to(row, row, cols, p, scale, stream);
}

// y (c) = LayerNorm(x (c)); its mean and 1/std saved. Two passes in double: exact enough that
// eps = 1e-12 behaves as in torch.
TLM_CLONES inline void layernorm_row(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                                     float* rstd, int c, float eps) {
  const auto x8 = [x](int j) { return load8(x + j); };
  const auto x1 = [x](int j) { return x[j]; };
  const double m = lane_sum(c, x8, x1, [](auto d) { return d; }) / c;
  const double v = lane_sum(c, x8, x1, [m](auto d) { return (d - m) * (d - m); });
  const float r = static_cast<float>(1.0 / std::sqrt(v / c + eps));
  const float mf = static_cast<float>(m);
  for (int j = 0; j < c; ++j) y[j] = (x[j] - mf) * r * gamma[j] + beta[j];
  *mean = mf;
  *rstd = r;
}

// dx (c) of LayerNorm at one row from dy (c), its input x (c), its saved mean m and 1/std r:
// dx = r (g - mean(g) - xhat mean(g xhat)) with g = dy gamma, xhat = (x - m) r (floats), the
// means summed in double.
TLM_CLONES inline void layernorm_backward_row(const float* dy, const float* x, float m, float r, const float* gamma,
                                              float* dx, int c) {
  const auto id = [](auto d) { return d; };
  const double sum_g = lane_sum(
      c, [&](int j) { return load8(dy + j) * load8(gamma + j); }, [&](int j) { return dy[j] * gamma[j]; }, id);
  const double sum_gx = lane_sum(
      c, [&](int j) { return load8(dy + j) * load8(gamma + j) * ((load8(x + j) - m) * r); },
      [&](int j) { return dy[j] * gamma[j] * ((x[j] - m) * r); }, id);
  const float mg = static_cast<float>(sum_g / c), mgx = static_cast<float>(sum_gx / c);
  for (int j = 0; j < c; ++j) dx[j] = r * (dy[j] * gamma[j] - mg - ((x[j] - m) * r) * mgx);
}

}  // namespace tlm::kernels
