// The 2-D "same" convolution of kernels.h as im2col + the linear layer's GEMM, in blocks of
// packed rows: the unfolded block colT (rows * width, in_ch * kh * kw) times w^T is the output
// block (rows * width, out_ch), channels-last, with no copy. The backward folds the input
// gradient back (col2im) in a fixed order, so results do not depend on the thread count.
#include "kernels/cpu/conv_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/kernels.h"
#include "tlm/check.h"

namespace tlm::kernels {

namespace {

constexpr int64_t kBlockFloats = int64_t{1} << 21;  // one unfolded block: 8 MB

int64_t patch_size(const ConvShape& s) { return int64_t{s.in_ch} * s.kh * s.kw; }
bool pointwise(const ConvShape& s) { return s.kh == 1 && s.kw == 1; }  // colT is x itself
int block_rows(const ConvShape& s) {
  return static_cast<int>(std::max<int64_t>(1, kBlockFloats / (int64_t{s.width} * patch_size(s))));
}
int pad_before(int k) { return (k - 1) / 2; }  // torch's "same": the odd one out goes after

// Rows [start, end) of the sequence that holds packed row g.
void sequence_of(const ConvShape& s, int g, int* start, int* end) {
  const int32_t* it = std::upper_bound(s.offsets, s.offsets + s.num_seqs + 1, g);
  *start = it[-1];
  *end = it[0];
}

// colT (g1 - g0) * width rows of patch_size: entry (ci, a, b) of output pixel (g, w) is input
// pixel (g + a - pad_h, w + b - pad_w) of channel ci, or 0 outside g's sequence or the width.
void unfold(const float* x, float* col, int g0, int g1, const ConvShape& s) {
  const int64_t k = patch_size(s), taps = int64_t{s.kh} * s.kw;
  const int ph = pad_before(s.kh), pw = pad_before(s.kw);
#pragma omp parallel for schedule(static)
  for (int g = g0; g < g1; ++g) {
    int start, end;
    sequence_of(s, g, &start, &end);
    float* rows = col + int64_t{g - g0} * s.width * k;
    std::fill(rows, rows + int64_t{s.width} * k, 0.0f);
    for (int a = 0; a < s.kh; ++a) {
      const int src_row = g + a - ph;
      if (src_row < start || src_row >= end) continue;
      const float* src_line = x + int64_t{src_row} * s.width * s.in_ch;
      for (int w = 0; w < s.width; ++w) {
        float* dst = rows + int64_t{w} * k + int64_t{a} * s.kw;
        for (int b = 0; b < s.kw; ++b) {
          const int src_col = w + b - pw;
          if (src_col < 0 || src_col >= s.width) continue;
          const float* src = src_line + int64_t{src_col} * s.in_ch;
          for (int ci = 0; ci < s.in_ch; ++ci) dst[ci * taps + b] = src[ci];
        }
      }
    }
  }
}

// dx += fold(dcol) for the output rows [g0, g1): each input row is written by one thread, summing
// its taps in (a, w, b) order.
void fold_add(const float* dcol, float* dx, int g0, int g1, const ConvShape& s, int n) {
  const int64_t k = patch_size(s), taps = int64_t{s.kh} * s.kw;
  const int ph = pad_before(s.kh), pw = pad_before(s.kw);
  const int lo = std::max(0, g0 - ph), hi = std::min(n, g1 + (s.kh - 1 - ph));  // rows [g0, g1) read
#pragma omp parallel for schedule(static)
  for (int r = lo; r < hi; ++r) {  // r: the input row receiving gradient
    int start, end;
    sequence_of(s, r, &start, &end);
    float* dst_line = dx + int64_t{r} * s.width * s.in_ch;
    for (int a = 0; a < s.kh; ++a) {
      const int g = r - a + ph;  // the output row that read r through tap row a
      if (g < g0 || g >= g1 || g < start || g >= end) continue;
      const float* rows = dcol + int64_t{g - g0} * s.width * k;
      for (int w = 0; w < s.width; ++w) {
        const float* src = rows + int64_t{w} * k + int64_t{a} * s.kw;
        for (int b = 0; b < s.kw; ++b) {
          const int dst_col = w + b - pw;
          if (dst_col < 0 || dst_col >= s.width) continue;
          float* dst = dst_line + int64_t{dst_col} * s.in_ch;
          for (int ci = 0; ci < s.in_ch; ++ci) dst[ci] += src[ci * taps + b];
        }
      }
    }
  }
}

void check_shape(const ConvShape& s) {
  TLM_CHECK(s.num_seqs >= 0 && s.width > 0 && s.in_ch > 0 && s.out_ch > 0 && s.kh > 0 && s.kw > 0,
            "convolution shape: {} sequences, width {}, channels {} -> {}, kernel {}x{}", s.num_seqs, s.width, s.in_ch,
            s.out_ch, s.kh, s.kw);
}

}  // namespace

int64_t conv2d_scratch_size(const ConvShape& shape) {
  if (pointwise(shape)) return 0;
  return 2 * int64_t{block_rows(shape)} * shape.width * patch_size(shape);
}

void conv2d_forward(CpuGemm& gemm, const float* x, const float* w, const float* b, float* y, float* scratch,
                    const ConvShape& s) {
  check_shape(s);
  const int n = s.num_seqs > 0 ? s.offsets[s.num_seqs] : 0;
  const int k = static_cast<int>(patch_size(s));
  if (pointwise(s)) {  // y (n * width, out) = x (n * width, in) w^T + b
    linear_forward(gemm, x, w, b, y, n * s.width, k, s.out_ch);
    return;
  }
  const int step = block_rows(s);
  for (int g0 = 0; g0 < n; g0 += step) {
    const int g1 = std::min(n, g0 + step);
    unfold(x, scratch, g0, g1, s);
    linear_forward(gemm, scratch, w, b, y + int64_t{g0} * s.width * s.out_ch, (g1 - g0) * s.width, k, s.out_ch);
  }
}

void conv2d_backward(CpuGemm& gemm, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                     float* scratch, const ConvShape& s) {
  check_shape(s);
  const int n = s.num_seqs > 0 ? s.offsets[s.num_seqs] : 0;
  const int k = static_cast<int>(patch_size(s));
  if (pointwise(s)) {
    linear_backward(gemm, dy, x, w, dx, dw, db, n * s.width, k, s.out_ch);
    return;
  }
  if (dx) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(n) * s.width * s.in_ch);
  const int step = block_rows(s);
  float* col = scratch;
  float* dcol = scratch + int64_t{step} * s.width * k;
  for (int g0 = 0; g0 < n; g0 += step) {
    const int g1 = std::min(n, g0 + step);
    unfold(x, col, g0, g1, s);
    linear_backward(gemm, dy + int64_t{g0} * s.width * s.out_ch, col, w, dx ? dcol : nullptr, dw, db,
                    (g1 - g0) * s.width, k, s.out_ch);
    if (dx) fold_add(dcol, dx, g0, g1, s, n);
  }
}

void conv2d_forward(const float* x, const float* w, const float* b, float* y, float* scratch, const ConvShape& shape) {
  conv2d_forward(fp32_gemm(), x, w, b, y, scratch, shape);
}

void conv2d_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, float* scratch,
                     const ConvShape& shape) {
  conv2d_backward(fp32_gemm(), dy, x, w, dx, dw, db, scratch, shape);
}

}  // namespace tlm::kernels
