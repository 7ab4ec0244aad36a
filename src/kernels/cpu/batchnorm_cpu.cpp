// BatchNorm over channels-last activations (pixels, ch), as torch's BatchNorm2d. Per-channel sums
// run in double over fixed row chunks, one per thread, added in chunk order: bit-identical for a
// given thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

// A calling thread's scratch, grown once and reused: no allocation per step.
template <typename T>
T* scratch(int slot, size_t count) {
  static thread_local std::vector<T> buffers[4];
  std::vector<T>& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}

// out[c] = sum over pixels of f(pixel, c), for c < ch; f returns double. The rows are split by the
// team OpenMP actually gives (which may be smaller than asked), one chunk per thread.
template <typename F>
void channel_sums(int64_t pixels, int ch, double* out, F&& f) {
  const int most = omp_get_max_threads();
  double* partial = scratch<double>(0, static_cast<size_t>(most) * ch);
  std::fill(partial, partial + static_cast<int64_t>(most) * ch, 0.0);
  int team = 1;
#pragma omp parallel num_threads(most)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
    team = nt;
    const int64_t p0 = pixels * t / nt, p1 = pixels * (t + 1) / nt;
    double* mine = partial + static_cast<int64_t>(t) * ch;
    for (int64_t p = p0; p < p1; ++p) {
      for (int c = 0; c < ch; ++c) mine[c] += f(p, c);
    }
  }
  for (int c = 0; c < ch; ++c) {
    double total = 0;
    for (int t = 0; t < team; ++t) total += partial[static_cast<size_t>(t) * ch + c];
    out[c] = total;
  }
}

// y = x * scale[c] + shift[c]
void affine(const float* x, const float* scale, const float* shift, float* y, int64_t pixels, int ch) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xr = x + p * ch;
    float* yr = y + p * ch;
    for (int c = 0; c < ch; ++c) yr[c] = xr[c] * scale[c] + shift[c];
  }
}

}  // namespace

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                             float* running_mean, float* running_var, int64_t pixels, int ch, float eps,
                             float momentum) {
  double *sum = scratch<double>(1, ch), *sq = scratch<double>(2, ch), *mu = scratch<double>(3, ch);
  channel_sums(pixels, ch, sum, [&](int64_t p, int c) { return double{x[p * ch + c]}; });
  for (int c = 0; c < ch; ++c) mu[c] = sum[c] / static_cast<double>(pixels);
  // Two passes (deviations from the mean) keep the variance exact when the mean is large.
  channel_sums(pixels, ch, sq, [&](int64_t p, int c) {
    const double d = x[p * ch + c] - mu[c];
    return d * d;
  });
  float *scale = scratch<float>(0, ch), *shift = scratch<float>(1, ch);
  for (int c = 0; c < ch; ++c) {
    const double var = sq[c] / static_cast<double>(pixels);  // biased: what normalises
    const double inv = 1.0 / std::sqrt(var + eps);
    mean[c] = static_cast<float>(mu[c]);
    rstd[c] = static_cast<float>(inv);
    scale[c] = static_cast<float>(gamma[c] * inv);
    shift[c] = static_cast<float>(beta[c] - mu[c] * gamma[c] * inv);
    // torch moves the running variance towards the unbiased estimate
    const double unbiased = pixels > 1 ? sq[c] / static_cast<double>(pixels - 1) : var;
    running_mean[c] = static_cast<float>(momentum * mu[c] + (1.0 - momentum) * running_mean[c]);
    running_var[c] = static_cast<float>(momentum * unbiased + (1.0 - momentum) * running_var[c]);
  }
  affine(x, scale, shift, y, pixels, ch);
}

void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, const float* running_mean,
                            const float* running_var, float* y, int64_t pixels, int ch, float eps) {
  float *scale = scratch<float>(0, ch), *shift = scratch<float>(1, ch);
  for (int c = 0; c < ch; ++c) {
    const double inv = 1.0 / std::sqrt(double{running_var[c]} + eps);
    scale[c] = static_cast<float>(gamma[c] * inv);
    shift[c] = static_cast<float>(beta[c] - running_mean[c] * gamma[c] * inv);
  }
  affine(x, scale, shift, y, pixels, ch);
}

void batchnorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        float* dx, float* dgamma, float* dbeta, int64_t pixels, int ch) {
  double *sum_dy = scratch<double>(1, ch), *sum_dy_xhat = scratch<double>(2, ch);
  channel_sums(pixels, ch, sum_dy, [&](int64_t p, int c) { return double{dy[p * ch + c]}; });
  channel_sums(pixels, ch, sum_dy_xhat, [&](int64_t p, int c) {
    return double{dy[p * ch + c]} * ((double{x[p * ch + c]} - mean[c]) * rstd[c]);
  });
  // dx = gamma rstd (dy - mean(dy) - xhat mean(dy xhat))
  float *a = scratch<float>(0, ch), *m_dy = scratch<float>(1, ch), *m_dyx = scratch<float>(2, ch);
  for (int c = 0; c < ch; ++c) {
    dgamma[c] += static_cast<float>(sum_dy_xhat[c]);
    dbeta[c] += static_cast<float>(sum_dy[c]);
    a[c] = gamma[c] * rstd[c];
    m_dy[c] = static_cast<float>(sum_dy[c] / static_cast<double>(pixels));
    m_dyx[c] = static_cast<float>(sum_dy_xhat[c] / static_cast<double>(pixels));
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pixels; ++p) {
    const float* dyr = dy + p * ch;
    const float* xr = x + p * ch;
    float* dxr = dx + p * ch;
    for (int c = 0; c < ch; ++c) {
      const float xhat = (xr[c] - mean[c]) * rstd[c];
      dxr[c] = a[c] * (dyr[c] - m_dy[c] - xhat * m_dyx[c]);
    }
  }
}

}  // namespace tlm::kernels
