// The row kernels of vec_math.h that choose their vector width at run time: x86-64-v4 code with
// 16-float vectors where the CPU has it (Zen 4 runs the exponential and GELU ~20-40% faster so:
// half the instructions), else the 8-float kernels cloned per instruction set.
#include "kernels/cpu/vec_math.h"

#include <cctype>
#include <cstdlib>
#include <string>

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

// Whether TLM_MAX_CPU_ISA (cpu_isa.h) allows AVX-512 code: unset, or any value but avx2. A value
// that is not a level is refused where it matters (native_bf16()); here it allows nothing wide.
bool cap_allows_avx512() {
  const char* env = std::getenv("TLM_MAX_CPU_ISA");
  if (env == nullptr || *env == '\0') return true;
  std::string v(env);
  for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return v == "avx512_core" || v == "avx512_core_bf16" || v == "avx512_core_amx";
}

int detect_vector_floats() {
#if TLM_HAS_WIDE
  __builtin_cpu_init();
  const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (v4 && cap_allows_avx512()) return 16;
#endif
  return 8;
}

TLM_CLONES double exp_sum8(const float* row, int k, float* max_out) {
  return exp_sum<false, f32x8>(row, nullptr, k, max_out);
}
TLM_CLONES double exp_sum_to8(const float* row, float* out, int k, float* max_out) {
  return exp_sum<true, f32x8>(row, out, k, max_out);
}
TLM_CLONES void gelu8(const float* x, float* y, int64_t n) { gelu_values<f32x8>(x, y, n); }
TLM_CLONES void gelu_backward8(const float* dy, const float* x, float* dx, int64_t n) {
  gelu_backward_values<f32x8>(dy, x, dx, n);
}

#if TLM_HAS_WIDE
TLM_WIDE_TARGET double exp_sum16(const float* row, int k, float* max_out) {
  return exp_sum<false, f32x16>(row, nullptr, k, max_out);
}
TLM_WIDE_TARGET double exp_sum_to16(const float* row, float* out, int k, float* max_out) {
  return exp_sum<true, f32x16>(row, out, k, max_out);
}
TLM_WIDE_TARGET void gelu16(const float* x, float* y, int64_t n) { gelu_values<f32x16>(x, y, n); }
TLM_WIDE_TARGET void gelu_backward16(const float* dy, const float* x, float* dx, int64_t n) {
  gelu_backward_values<f32x16>(dy, x, dx, n);
}
#endif

// Whether `floats` asks for the wide kernels (16, allowed only where vector_floats() is 16).
bool wide(int floats) {
  if (floats == 8) return false;
  TLM_CHECK(floats == 16 && vector_floats() == 16, "vector width {} floats is not available here (widest: {})", floats,
            vector_floats());
  return true;
}

}  // namespace

int vector_floats() {
  static const int floats = detect_vector_floats();
  return floats;
}

double row_exp_sum(const float* row, int k, float* max_out, int floats) {
#if TLM_HAS_WIDE
  if (wide(floats)) return exp_sum16(row, k, max_out);
#else
  (void)wide(floats);
#endif
  return exp_sum8(row, k, max_out);
}

double row_exp_sum_to(const float* row, float* out, int k, float* max_out, int floats) {
#if TLM_HAS_WIDE
  if (wide(floats)) return exp_sum_to16(row, out, k, max_out);
#else
  (void)wide(floats);
#endif
  return exp_sum_to8(row, out, k, max_out);
}

void gelu_span(const float* x, float* y, int64_t n, int floats) {
#if TLM_HAS_WIDE
  if (wide(floats)) return gelu16(x, y, n);
#else
  (void)wide(floats);
#endif
  gelu8(x, y, n);
}

void gelu_backward_span(const float* dy, const float* x, float* dx, int64_t n, int floats) {
#if TLM_HAS_WIDE
  if (wide(floats)) return gelu_backward16(dy, x, dx, n);
#else
  (void)wide(floats);
#endif
  gelu_backward8(dy, x, dx, n);
}

}  // namespace tlm::kernels
