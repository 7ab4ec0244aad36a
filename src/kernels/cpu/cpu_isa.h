// What the CPU can compute natively, as tlm's own dispatch sees it: the hardware's features
// capped by the environment variable TLM_MAX_CPU_ISA (avx2 | avx512_core | avx512_core_bf16 |
// avx512_core_amx, oneDNN's names), which simulates an older CPU. Set ONEDNN_MAX_CPU_ISA to the
// same value so oneDNN's own dispatch is capped too; tlm takes native bf16 only where both allow it.
#pragma once

#include <string>

namespace tlm::kernels {

struct NativeBf16 {
  bool available = false;
  std::string why;  // one line: what was found (or what is missing)
};
// Whether bf16 GEMMs run natively here (AVX512_BF16 or AMX, allowed by both caps). A value of
// TLM_MAX_CPU_ISA that is not one of the names above throws tlm::Error naming the variable.
NativeBf16 native_bf16();

// Whether vec_math.h's 16-float row kernels may run: the CPU has x86-64-v4 (AVX-512 F, BW, DQ,
// VL, CD and AVX2's level) and TLM_MAX_CPU_ISA allows avx512_core. A value of the variable that
// is not a level allows none (native_bf16() is where it is refused by name). The cap does not
// reach GCC's target_clones, whose loader picks the AVX-512 clones of the 8-float kernels by the
// CPU alone (the same bits as every other clone).
bool avx512_allowed();

}  // namespace tlm::kernels
