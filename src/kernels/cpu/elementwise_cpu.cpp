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

// block_sum_squares of x (n values), element `base` of the array z describes, reading only the
// eight-value chunks that hold more than z's dead rows: a chunk left out adds +0 squares, which
// leave every lane as it is, so the sum is the same to the bit.
TLM_CLONES double block_sum_squares_live(const float* x, int n, int64_t base, const LiveRows& z) {
  const auto square = [](auto d) { return d * d; };
  const int vec_end = n - n % 8;
  const int64_t r_begin = z.offset - base, r_end = r_begin + z.rows * z.cols;  // the region in x's indices
  Lanes a;
  const auto read = [&](int from, int to) {
    for (int j = from; j < to; j += 8) lane_add(a, load8(x + j), square);
  };
  const auto chunk_floor = [](int64_t i) { return i & ~int64_t{7}; };
  int j = 0;
  while (j < vec_end) {
    int next;
    if (j >= r_end) {
      next = vec_end;  // after the region: everything
      read(j, next);
    } else if (j + 8 <= r_begin) {
      next = static_cast<int>(std::min<int64_t>(vec_end, chunk_floor(r_begin)));  // up to the region
      read(j, next);
    } else if (j < r_begin || j + 8 > r_end) {
      next = j + 8;  // a chunk across the region's edge
      read(j, next);
    } else {
      const int64_t row0 = (j - r_begin) / z.cols, row1 = (j + 7 - r_begin) / z.cols;
      bool live = false;
      for (int64_t r = row0; r <= row1; ++r) live = live || z.live[r] != 0;
      int64_t r = row1;
      if (live) {  // read to the end of the run of live rows from here
        while (r + 1 < z.rows && z.live[r + 1] != 0) ++r;
        next = static_cast<int>(std::min<int64_t>(vec_end, chunk_floor(r_begin + (r + 1) * z.cols + 7)));
        read(j, next);
      } else {  // skip to the chunk of the next live row's first value (or of the region's end)
        do ++r;
        while (r < z.rows && z.live[r] == 0);
        next =
            static_cast<int>(std::max<int64_t>(j + 8, std::min<int64_t>(vec_end, chunk_floor(r_begin + r * z.cols))));
      }
    }
    j = next;
  }
  double s = lane_total(a);
  for (j = vec_end; j < n; ++j) s += square(static_cast<double>(x[j]));
  return s;
}

// The sum over [0, n) in fixed blocks, block(begin, count) each summed by one thread, then the
// block sums added in order: the same result for any thread count. Groups of blocks keep the
// partial sums on the stack (no allocation).
template <typename Block>
double sum_in_blocks(int64_t n, Block block) {
  constexpr int64_t kBlock = 1 << 16, kGroup = 256;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  double total = 0;
  for (int64_t g0 = 0; g0 < blocks; g0 += kGroup) {
    double partial[kGroup];
    const int64_t g1 = std::min(blocks, g0 + kGroup);
#pragma omp parallel for schedule(static) if (g1 - g0 > 1)
    for (int64_t b = g0; b < g1; ++b) {
      partial[b - g0] = block(b * kBlock, static_cast<int>(std::min(n, (b + 1) * kBlock) - b * kBlock));
    }
    for (int64_t b = g0; b < g1; ++b) total += partial[b - g0];
  }
  return total;
}

}  // namespace

double sum_squares(const float* x, int64_t n) {
  return sum_in_blocks(n, [x](int64_t begin, int count) { return block_sum_squares(x + begin, count); });
}

double sum_squares_live(const float* x, int64_t n, const LiveRows& z) {
  const int64_t z_end = z.offset + z.rows * z.cols;
  return sum_in_blocks(n, [&](int64_t begin, int count) {
    const bool meets = begin < z_end && z.offset < begin + count;
    return meets ? block_sum_squares_live(x + begin, count, begin, z) : block_sum_squares(x + begin, count);
  });
}

}  // namespace tlm::kernels
