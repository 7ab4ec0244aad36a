#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm::kernels {

namespace {

// Calls fn(begin, end) on fixed chunks of [0, n) in parallel (chunks of whole SIMD widths).
template <typename Fn>
void parallel_chunks(int64_t n, Fn&& fn) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) fn(c * kChunk, std::min(n, (c + 1) * kChunk));
}

}  // namespace

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
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

double sum_squares(const float* x, int64_t n) {
  // Fixed blocks summed in order: the same result for any thread count.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  double total = 0;
#pragma omp parallel for schedule(static) ordered
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
#pragma omp ordered
    total += s;
  }
  return total;
}

}  // namespace tlm::kernels
