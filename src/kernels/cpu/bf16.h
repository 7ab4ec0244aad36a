// bfloat16: the top 16 bits of an IEEE float32 (8-bit exponent, 7 stored mantissa bits), rounded
// to nearest-even as torch's c10::BFloat16 and the AVX512_BF16 conversion instructions do.
#pragma once

#include <bit>
#include <cstdint>

#include "kernels/bf16_bits.h"

namespace tlm::kernels {

// Round-to-nearest-even (kernels/bf16_bits.h's rule).
inline uint16_t to_bf16(float x) { return bf16_from_float_bits(std::bit_cast<uint32_t>(x)); }
inline float from_bf16(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
// x rounded to the nearest bf16, kept as a float (exact: every bf16 is a float).
inline float round_bf16(float x) { return from_bf16(to_bf16(x)); }

// x (n) -> y (n) bf16 bits (OpenMP threads over chunks of 16,384 elements).
void to_bf16(const float* x, uint16_t* y, int64_t n);
// x (n) -> y (n) rounded to bf16 but stored as float (the emulated GEMM's operands); y may be x.
void round_bf16(const float* x, float* y, int64_t n);

}  // namespace tlm::kernels
