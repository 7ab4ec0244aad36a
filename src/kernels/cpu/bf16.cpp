#include "kernels/cpu/bf16.h"

namespace tlm::kernels {

// Plain loops the compiler vectorises (integer adds and shifts); the conversion is a pass over
// memory next to a GEMM that reads the operand many times.
void to_bf16(const float* x, uint16_t* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}

void round_bf16(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(x[i]);
}

}  // namespace tlm::kernels
