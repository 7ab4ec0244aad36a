#include <cmath>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int n,
                       int c, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* xi = x + static_cast<int64_t>(i) * c;
    float* yi = y + static_cast<int64_t>(i) * c;
    // Two passes in double: exact enough that eps = 1e-12 behaves as in torch.
    double s = 0;
    for (int j = 0; j < c; ++j) s += xi[j];
    const double m = s / c;
    double v = 0;
    for (int j = 0; j < c; ++j) v += (xi[j] - m) * (xi[j] - m);
    const float r = static_cast<float>(1.0 / std::sqrt(v / c + eps));
    const float mf = static_cast<float>(m);
    for (int j = 0; j < c; ++j) yi[j] = (xi[j] - mf) * r * gamma[j] + beta[j];
    mean[i] = mf;
    rstd[i] = r;
  }
}

void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        float* dx, float* dgamma, float* dbeta, int n, int c) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* xi = x + static_cast<int64_t>(i) * c;
    const float* dyi = dy + static_cast<int64_t>(i) * c;
    float* dxi = dx + static_cast<int64_t>(i) * c;
    const float m = mean[i], r = rstd[i];
    double sum_g = 0, sum_gx = 0;  // mean(dxhat), mean(dxhat * xhat)
    for (int j = 0; j < c; ++j) {
      const float g = dyi[j] * gamma[j];
      sum_g += g;
      sum_gx += g * ((xi[j] - m) * r);
    }
    const float mg = static_cast<float>(sum_g / c), mgx = static_cast<float>(sum_gx / c);
    for (int j = 0; j < c; ++j) {
      const float xhat = (xi[j] - m) * r;
      dxi[j] = r * (dyi[j] * gamma[j] - mg - xhat * mgx);
    }
  }
  parallel_column_blocks(c, [&](int c0, int c1) {
    for (int i = 0; i < n; ++i) {
      const float* xi = x + static_cast<int64_t>(i) * c;
      const float* dyi = dy + static_cast<int64_t>(i) * c;
      const float m = mean[i], r = rstd[i];
      for (int j = c0; j < c1; ++j) {
        dgamma[j] += dyi[j] * ((xi[j] - m) * r);
        dbeta[j] += dyi[j];
      }
    }
  });
}

}  // namespace tlm::kernels
