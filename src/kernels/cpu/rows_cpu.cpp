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

// One span of the AdamW update (the vectors do not overlap). With kZeroGrad every gradient is
// +0 and grads is not read: the same IEEE operations on the same values as the dense update of a
// +0 gradient (without -ffast-math nothing folds `m * b1 + 0 * c1` to `m * b1`), so the same bits.
template <bool kZeroGrad>
[[gnu::always_inline]] inline void adamw_body(float* __restrict params, const float* __restrict grads,
                                              float* __restrict m, float* __restrict v, int64_t n,
                                              const AdamWScalars& s) {
  const float decay = s.decay_factor, b1 = s.beta1, c1 = s.one_minus_beta1, b2 = s.beta2, c2 = s.one_minus_beta2;
  const float bc2 = s.bias_correction2_sqrt, eps = s.eps, step = s.step_size, clip = s.grad_scale;
  for (int64_t i = 0; i < n; ++i) {
    const float g = (kZeroGrad ? 0.0f : grads[i]) * clip;
    const float mi = m[i] * b1 + g * c1;
    const float vi = v[i] * b2 + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2 + eps;
    params[i] = params[i] * decay + -step * (mi / denom);
  }
}

// Cloned per instruction set: the same IEEE operations in every clone, so the same bits.
TLM_CLONES void adamw_span(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s) {
  adamw_body<false>(params, grads, m, v, n, s);
}
TLM_CLONES void adamw_span_zero_grad(float* params, float* m, float* v, int64_t n, const AdamWScalars& s) {
  adamw_body<true>(params, nullptr, m, v, n, s);
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { adamw_span(params + b, grads + b, m + b, v + b, e - b, s); });
}

void adamw_update_live(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s,
                       const LiveRows& z) {
  const int64_t z_end = z.offset + z.rows * z.cols;
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    // [b, e) in runs: before the region, rows of one liveness, after the region
    for (int64_t i = b; i < e;) {
      int64_t next = e;
      bool live = true;
      if (i < z.offset) {
        next = std::min(e, z.offset);
      } else if (i < z_end) {
        int64_t r = (i - z.offset) / z.cols;
        live = z.live[r] != 0;
        while (r + 1 < z.rows && (z.live[r + 1] != 0) == live) ++r;
        next = std::min(e, z.offset + (r + 1) * z.cols);
      }
      if (live) {
        adamw_span(params + i, grads + i, m + i, v + i, next - i, s);
      } else {
        adamw_span_zero_grad(params + i, m + i, v + i, next - i, s);
      }
      i = next;
    }
  });
}

void zero_live_rows(float* x, const LiveRows& z) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < z.rows; ++r) {
    if (z.live[r] != 0) std::fill_n(x + z.offset + r * z.cols, z.cols, 0.0f);
  }
}

int64_t first_nonfinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

}  // namespace tlm::kernels
