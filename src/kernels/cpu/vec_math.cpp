// The row kernels of vec_math.h that choose their vector width at run time: x86-64-v4 code with
// 16-float vectors where the CPU has it (on Zen 4 the exponential and GELU take 27-41% less time:
// half the instructions), else the 8-float kernels cloned per instruction set.
#include "kernels/cpu/vec_math.h"

#include "kernels/cpu/cpu_isa.h"
#include "tlm/check.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TLM_WIDE_TARGET __attribute__((target("arch=x86-64-v4")))
#define TLM_HAS_WIDE 1
#else
#define TLM_WIDE_TARGET
#define TLM_HAS_WIDE 0
#endif

namespace tlm::kernels {

namespace {

// One call of a row kernel: which kernel, its operands, its result.
struct RowCall {
  enum class Op { kExpSum, kExpSumTo, kGelu, kGeluBackward } op;
  const float* x;   // the row, or GELU's input
  const float* dy;  // GELU backward's upstream gradient
  float* out;       // the exponentials, GELU's output or its input gradient
  int64_t n;        // values
  float* max_out;   // the row's max (exp sums)
  double sum = 0;   // the exp sum
};

template <typename V>
[[gnu::always_inline]] inline void run_row(RowCall& c) {
  switch (c.op) {
    case RowCall::Op::kExpSum:
      c.sum = exp_sum<false, V>(c.x, nullptr, static_cast<int>(c.n), c.max_out);
      break;
    case RowCall::Op::kExpSumTo:
      c.sum = exp_sum<true, V>(c.x, c.out, static_cast<int>(c.n), c.max_out);
      break;
    case RowCall::Op::kGelu:
      gelu_values<V>(c.x, c.out, c.n);
      break;
    case RowCall::Op::kGeluBackward:
      gelu_backward_values<V>(c.dy, c.x, c.out, c.n);
      break;
  }
}

TLM_CLONES void run_narrow(RowCall& c) { run_row<f32x8>(c); }
#if TLM_HAS_WIDE
TLM_WIDE_TARGET void run_wide(RowCall& c) { run_row<f32x16>(c); }
#endif

// Runs c on 8 floats, or on 16 (allowed only where vector_floats() is 16).
void run_row_call(RowCall& c, int floats) {
  if (floats != 8) {
    TLM_CHECK(floats == 16 && vector_floats() == 16, "vector width {} floats is not available here (widest: {})",
              floats, vector_floats());
#if TLM_HAS_WIDE
    run_wide(c);
    return;
#endif
  }
  run_narrow(c);
}

}  // namespace

int vector_floats() {
#if TLM_HAS_WIDE
  static const int floats = avx512_allowed() ? 16 : 8;
#else
  static const int floats = 8;
#endif
  return floats;
}

double row_exp_sum(const float* row, int k, float* max_out, int floats) {
  RowCall c{RowCall::Op::kExpSum, row, nullptr, nullptr, k, max_out};
  run_row_call(c, floats);
  return c.sum;
}

double row_exp_sum_to(const float* row, float* out, int k, float* max_out, int floats) {
  RowCall c{RowCall::Op::kExpSumTo, row, nullptr, out, k, max_out};
  run_row_call(c, floats);
  return c.sum;
}

void gelu_span(const float* x, float* y, int64_t n, int floats) {
  RowCall c{RowCall::Op::kGelu, x, nullptr, y, n, nullptr};
  run_row_call(c, floats);
}

void gelu_backward_span(const float* dy, const float* x, float* dx, int64_t n, int floats) {
  RowCall c{RowCall::Op::kGeluBackward, x, dy, dx, n, nullptr};
  run_row_call(c, floats);
}

}  // namespace tlm::kernels

#undef TLM_WIDE_TARGET
#undef TLM_HAS_WIDE
