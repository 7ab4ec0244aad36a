// bfloat16: the top 16 bits of an IEEE float32 (8-bit exponent, 7 stored mantissa bits), rounded
// to nearest-even as torch's c10::BFloat16 and the AVX512_BF16 conversion instructions do.
#pragma once

#include <bit>
#include <cstdint>

namespace tlm::kernels {

// Round-to-nearest-even; a NaN becomes torch's quiet NaN 0x7fc0; values beyond bf16's range
// become +-inf.
inline uint16_t to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}
inline float from_bf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
// x rounded to the nearest bf16, kept as a float (exact: every bf16 is a float).
inline float round_bf16(float x) { return from_bf16(to_bf16(x)); }

// x (n) -> y (n) bf16 bits (OpenMP threads above 65,536 elements).
void to_bf16(const float* x, uint16_t* y, int64_t n);
// x (n) -> y (n) rounded to bf16 but stored as float (the emulated GEMM's operands).
void round_bf16(const float* x, float* y, int64_t n);

}  // namespace tlm::kernels
