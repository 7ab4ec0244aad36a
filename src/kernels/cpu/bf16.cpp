#include "kernels/cpu/bf16.h"

#include "core/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace tlm::kernels {

namespace {

// A plain loop the compiler vectorises (integer adds and shifts), cloned per instruction set
// (integer operations: the same bits in every clone). The conversion is a pass over memory next
// to a GEMM that reads the operand many times.
TLM_CLONES void to_bf16_span(const float* __restrict x, uint16_t* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}

TLM_CLONES void round_bf16_span(const float* x, float* y, int64_t n) {  // y may be x
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(x[i]);
}

}  // namespace

void to_bf16(const float* x, uint16_t* y, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { to_bf16_span(x + b, y + b, e - b); });
}

void round_bf16(const float* x, float* y, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { round_bf16_span(x + b, y + b, e - b); });
}

}  // namespace tlm::kernels
