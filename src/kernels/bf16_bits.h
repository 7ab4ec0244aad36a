// The bfloat16 rounding rule on an IEEE float32's bits, the one definition the CPU (cpu/bf16.h)
// and the CUDA kernels (cuda/elementwise.cu) round with: to nearest-even, as torch's
// c10::BFloat16 and the AVX512_BF16 conversions do; a NaN becomes torch's quiet NaN 0x7fc0;
// values beyond bf16's range become +-inf.
#pragma once

#include <cstdint>

#include "tlm/host_device.h"

namespace tlm::kernels {

TLM_HOST_DEVICE inline uint16_t bf16_from_float_bits(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace tlm::kernels
