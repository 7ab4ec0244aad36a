#include <cblas.h>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) {
  if (b) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) std::copy(b, b + out, y + static_cast<int64_t>(i) * out);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                     int out) {
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  // dw (out, in) += dy^T (out, n) x (n, in)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    parallel_column_blocks(out, [&](int c0, int c1) {
      for (int i = 0; i < n; ++i) {
        const float* row = dy + static_cast<int64_t>(i) * out;
        for (int c = c0; c < c1; ++c) db[c] += row[c];
      }
    });
  }
}

}  // namespace tlm::kernels
