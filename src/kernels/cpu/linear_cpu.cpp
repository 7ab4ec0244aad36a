// The fp32 linear layer of kernels.h: the OpenBLAS GEMM of gemm_cpu.h.
#include "kernels/cpu/gemm_cpu.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

CpuGemm& fp32_gemm() {
  static CpuGemm gemm(GemmMode::kOpenBlasFp32);  // keeps no state in this mode: shared by every thread
  return gemm;
}

void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) {
  linear_forward(fp32_gemm(), x, w, b, y, n, in, out);
}

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                     int out) {
  linear_backward(fp32_gemm(), dy, x, w, dx, dw, db, n, in, out);
}

}  // namespace tlm::kernels
