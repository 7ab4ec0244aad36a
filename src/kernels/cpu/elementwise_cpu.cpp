#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm::kernels {

void gelu_forward(const float* x, float* y, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { gelu_span(x + b, y + b, e - b); });
}

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { gelu_backward_span(dy + b, x + b, dx + b, e - b); });
}

void tanh_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys) {
  if (p <= 0.0f) return;
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) dropout_row(x + int64_t{r} * cols, cols, p, scale, row_stream(key, row_keys[r]));
}

void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale_inplace(float* y, float s, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { scale_row(y + b, static_cast<int>(e - b), s); });
}

namespace {

// sum x^2 over one block (n values) in double, in lane_sum's eight interleaved lanes.
TLM_CLONES double block_sum_squares(const float* x, int n) {
  return lane_sum(
      n, [x](int j) { return load8(x + j); }, [x](int j) { return x[j]; }, [](auto d) { return d * d; });
}

}  // namespace

double sum_squares(const float* x, int64_t n) {
  // Fixed blocks, each summed by one thread, then the block sums added in order: the same result
  // for any thread count. Groups of blocks keep the partial sums on the stack (no allocation).
  constexpr int64_t kBlock = 1 << 16, kGroup = 256;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  double total = 0;
  for (int64_t g0 = 0; g0 < blocks; g0 += kGroup) {
    double partial[kGroup];
    const int64_t g1 = std::min(blocks, g0 + kGroup);
#pragma omp parallel for schedule(static) if (g1 - g0 > 1)
    for (int64_t b = g0; b < g1; ++b) {
      partial[b - g0] = block_sum_squares(x + b * kBlock, static_cast<int>(std::min(n, (b + 1) * kBlock) - b * kBlock));
    }
    for (int64_t b = g0; b < g1; ++b) total += partial[b - g0];
  }
  return total;
}

}  // namespace tlm::kernels
