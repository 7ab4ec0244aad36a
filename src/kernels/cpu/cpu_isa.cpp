#include "kernels/cpu/cpu_isa.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tlm/check.h"

namespace tlm::kernels {

namespace {

// The caps in increasing order; the index is the level.
const std::vector<std::string_view>& isa_levels() {
  static const std::vector<std::string_view> levels = {"avx2", "avx512_core", "avx512_core_bf16", "avx512_core_amx"};
  return levels;
}
constexpr size_t kBf16Level = 2;

constexpr size_t kAvx512Level = 1;

// The level TLM_MAX_CPU_ISA allows (the highest when unset), or none when it names no level.
std::optional<size_t> cap_level() {
  const char* env = std::getenv("TLM_MAX_CPU_ISA");
  if (env == nullptr || *env == '\0') return isa_levels().size() - 1;
  std::string v(env);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return std::tolower(ch); });
  const auto& l = isa_levels();
  const auto it = std::find(l.begin(), l.end(), v);
  if (it == l.end()) return std::nullopt;
  return static_cast<size_t>(it - l.begin());
}

// cap_level(), refusing a value that names no level.
size_t tlm_cap() {
  const std::optional<size_t> cap = cap_level();
  if (!cap) {
    throw Error(fmt::format("TLM_MAX_CPU_ISA={}: not one of {}", std::getenv("TLM_MAX_CPU_ISA"),
                            fmt::join(isa_levels(), ", ")));
  }
  return *cap;
}

}  // namespace

NativeBf16 native_bf16() {
  const size_t cap = tlm_cap();  // a bad value is refused whatever the CPU
  const bool hardware = __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
  if (!hardware) return {false, "this CPU has neither AVX512_BF16 nor AMX"};
  if (cap < kBf16Level) return {false, "AVX512_BF16 is capped by TLM_MAX_CPU_ISA"};
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((isa & bf16) != bf16) return {false, "oneDNN's instruction set is capped below AVX512_BF16 (ONEDNN_MAX_CPU_ISA)"};
  return {true, __builtin_cpu_supports("amx-bf16") ? "the CPU has AMX-BF16" : "the CPU has AVX512_BF16"};
}

bool avx512_allowed() {
  const std::optional<size_t> cap = cap_level();
  __builtin_cpu_init();
  // the level the 16-float kernels are compiled for, as GCC's clone selector tests it
  return __builtin_cpu_supports("x86-64-v4") && cap && *cap >= kAvx512Level;
}

}  // namespace tlm::kernels
