// The CPU's GEMMs (kernels/cpu/gemm_cpu.h): bf16 rounding bit for bit as torch's c10::BFloat16,
// every GEMM mode against a double-precision reference of what it claims to compute, and the
// linear layer's bias gradient on each.
//
// Tolerances (normwise: max |ours - ref| / max |ref|): every mode sums exact products in fp32
// (fp32 x fp32 products rounded once; bf16 x bf16 products exact in fp32), so against a double
// sum of the same operands only fp32 summation error is left: ~sqrt(K) * 6e-8 for a random-sign
// sum, at most K * 6e-8 (3e-5 at K = 500). 2e-6 holds at K <= 500 with a margin; a mode that
// skipped the rounding of one operand (bf16 against unrounded operands) errs by ~2e-3, 1000x more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm_cpu.h"
#include "tlm/check.h"

namespace tlm::testing {
namespace {

namespace k = kernels;

TEST(Bf16, RoundsToNearestEvenAsTorch) {
  // (input bits, expected bf16 bits): the values torch.tensor(x).bfloat16() gives.
  const std::vector<std::pair<uint32_t, uint16_t>> cases = {
      {0x3f800000u, 0x3f80},  // 1.0 exactly
      {0x3f808000u, 0x3f80},  // 1 + 2^-8: a tie, to the even mantissa (down)
      {0x3f818000u, 0x3f82},  // 1 + 3 * 2^-8: a tie, to the even mantissa (up)
      {0x3f808001u, 0x3f81},  // just above the tie: up
      {0x3f807fffu, 0x3f80},  // just below: down
      {0xbf818000u, 0xbf82},  // negative ties like positive ones
      {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds past bf16's largest value: +inf
      {0x7f800000u, 0x7f80},  // +inf
      {0xff800000u, 0xff80},  // -inf
      {0x7fc00000u, 0x7fc0},  // NaN
      {0xffc00001u, 0x7fc0},  // a negative NaN with payload: torch's canonical NaN
      {0x00000001u, 0x0000},  // the smallest denormal rounds to +0
      {0x80000000u, 0x8000},  // -0 keeps its sign
      {0x00018000u, 0x0002},  // denormal tie, to even
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(k::to_bf16(std::bit_cast<float>(in)), want) << std::hex << in;
  }
  EXPECT_EQ(k::from_bf16(0x3f82), 1.0f + 2.0f / 128.0f);
  std::vector<float> x = {1.0f, 1.00390625f, 3.14159265f}, y(3);
  k::round_bf16(x.data(), y.data(), 3);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], 3.140625f);
}

struct Shape {
  bool ta, tb;
  int m, n, k;
  bool accumulate;
};

// Normwise error of c against the double product of (optionally bf16-rounded) a and b.
double gemm_error(k::GemmMode mode, const Shape& s, bool reference_rounds, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(s.m) * s.k), b(static_cast<size_t>(s.k) * s.n),
      c(static_cast<size_t>(s.m) * s.n);
  for (auto& v : a) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  for (auto& v : c) v = dist(rng);
  const std::vector<float> c0 = c;
  k::CpuGemm gemm(mode);
  gemm.run(s.ta, s.tb, s.m, s.n, s.k, a.data(), b.data(), c.data(), s.accumulate);
  auto at = [&](const std::vector<float>& v, bool t, int rows, int cols, int i, int j) {
    const float x = t ? v[static_cast<size_t>(j) * rows + i] : v[static_cast<size_t>(i) * cols + j];
    return static_cast<double>(reference_rounds ? k::round_bf16(x) : x);
  };
  double err = 0, scale = 0;
  for (int i = 0; i < s.m; ++i) {
    for (int j = 0; j < s.n; ++j) {
      double ref = s.accumulate ? c0[static_cast<size_t>(i) * s.n + j] : 0.0;
      for (int p = 0; p < s.k; ++p) ref += at(a, s.ta, s.m, s.k, i, p) * at(b, s.tb, s.k, s.n, p, j);
      err = std::max(err, std::fabs(ref - c[static_cast<size_t>(i) * s.n + j]));
      scale = std::max(scale, std::fabs(ref));
    }
  }
  return err / scale;
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all = {
      {false, true, 37, 29, 53, false},  {false, true, 37, 29, 53, true},  // linear forward
      {false, false, 41, 33, 27, false},                                   // input gradient
      {true, false, 19, 23, 500, true},                                    // weight gradient
      {true, true, 7, 5, 3, false},      {false, false, 1, 1, 1, true},
      // at least kSmallNativeBf16Products multiply-adds: native bf16 runs in oneDNN, the smaller
      // products above run rounded through sgemm
      {false, true, 131, 97, 101, true}, {true, false, 97, 101, 131, true},
  };
  return all;
}

void check_mode(k::GemmMode mode, bool rounds) {
  static_assert(int64_t{131} * 97 * 101 >= k::kSmallNativeBf16Products);
  std::mt19937 rng(7);
  for (const Shape& s : shapes()) {
    const std::string what =
        fmt::format("{} ta={} tb={} {}x{}x{} acc={}", k::gemm_mode_name(mode), s.ta, s.tb, s.m, s.n, s.k, s.accumulate);
    EXPECT_LE(gemm_error(mode, s, rounds, rng), 2e-6) << what;
    if (rounds && s.k >= 27) {
      // The same product against unrounded operands is off by bf16's rounding: the check above
      // would fail if the mode did not round.
      EXPECT_GE(gemm_error(mode, s, false, rng), 2e-4) << what << " does not round its operands";
    }
  }
}

TEST(CpuGemm, OpenBlasFp32) { check_mode(k::GemmMode::kOpenBlasFp32, false); }
TEST(CpuGemm, OneDnnFp32) { check_mode(k::GemmMode::kOneDnnFp32, false); }
TEST(CpuGemm, Bf16Emulated) { check_mode(k::GemmMode::kBf16Emulated, true); }
// Native bf16 needs the CPU (AVX512_BF16 / AMX) and oneDNN's optimised bf16 matmul; the layouts
// oneDNN accepts are guarded on every machine by OneDnnFp32RunsOptimisedKernels (the same
// descriptors with another data type).
void skip_without_native_bf16() {
  const std::string why_not = k::CpuGemm::unavailable(k::GemmMode::kBf16OneDnn);
  if (!why_not.empty()) GTEST_SKIP() << "no native bf16 here: " << why_not;
}
TEST(CpuGemm, Bf16OneDnnNative) {
  skip_without_native_bf16();
  if (IsSkipped()) return;
  check_mode(k::GemmMode::kBf16OneDnn, true);
}

// oneDNN must run its optimised kernels for every operand layout a linear layer uses: with the
// wrong descriptors it silently takes its reference kernel (~100x slower than a BLAS).
void check_optimised(k::GemmMode mode) {
  k::CpuGemm gemm(mode);
  for (const k::GemmLayout& l : k::kLinearLayouts) {
    const std::string impl = gemm.implementation(l.trans_a, l.trans_b, l.accumulate);
    EXPECT_FALSE(impl.starts_with("ref"))
        << k::gemm_mode_name(mode) << " ta=" << l.trans_a << " tb=" << l.trans_b << ": " << impl;
  }
  EXPECT_EQ(k::CpuGemm::unavailable(mode), "");
}
TEST(CpuGemm, OneDnnFp32RunsOptimisedKernels) { check_optimised(k::GemmMode::kOneDnnFp32); }
TEST(CpuGemm, OneDnnBf16RunsOptimisedKernels) {
  skip_without_native_bf16();
  if (IsSkipped()) return;
  check_optimised(k::GemmMode::kBf16OneDnn);
}

// TLM_MAX_CPU_ISA caps what tlm's dispatch sees: below avx512_core_bf16 no CPU is native bf16.
TEST(CpuIsa, TheCapTurnsNativeBf16Off) {
  const char* old = std::getenv("TLM_MAX_CPU_ISA");
  const std::string saved = old ? old : "";
  const bool hardware = __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
  for (const char* cap : {"avx2", "AVX512_CORE"}) {
    setenv("TLM_MAX_CPU_ISA", cap, 1);
    const k::NativeBf16 n = k::native_bf16();
    EXPECT_FALSE(n.available) << cap;
    if (hardware) {
      EXPECT_NE(n.why.find("capped by TLM_MAX_CPU_ISA"), std::string::npos) << n.why;
    }
  }
  setenv("TLM_MAX_CPU_ISA", "avx9", 1);
  EXPECT_THROW(k::native_bf16(), Error);  // refused whatever the CPU
  setenv("TLM_MAX_CPU_ISA", "avx512_core_bf16", 1);
  const k::NativeBf16 uncapped = k::native_bf16();
  if (!hardware) {
    EXPECT_FALSE(uncapped.available);
  } else {  // native, unless oneDNN's own detection or ONEDNN_MAX_CPU_ISA disagrees (it says so)
    EXPECT_TRUE(uncapped.available || uncapped.why.find("oneDNN") != std::string::npos) << uncapped.why;
  }
  if (old) {
    setenv("TLM_MAX_CPU_ISA", saved.c_str(), 1);
  } else {
    unsetenv("TLM_MAX_CPU_ISA");
  }
}

TEST(CpuGemm, EmptySumsFollowBlas) {
  for (k::GemmMode mode : {k::GemmMode::kOpenBlasFp32, k::GemmMode::kOneDnnFp32, k::GemmMode::kBf16Emulated}) {
    k::CpuGemm gemm(mode);
    std::vector<float> c = {1, 2, 3, 4};
    gemm.run(false, false, 2, 2, 0, nullptr, nullptr, c.data(), true);
    EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4})) << k::gemm_mode_name(mode);
    gemm.run(false, false, 2, 2, 0, nullptr, nullptr, c.data(), false);
    EXPECT_EQ(c, (std::vector<float>{0, 0, 0, 0})) << k::gemm_mode_name(mode);
  }
}

// linear_backward's weight gradient reuses the bf16 copy of dy made for the input gradient: the
// same bits as converting it again, in both bf16 modes; a reuse without that previous a is refused.
void check_reuse(k::GemmMode mode) {
  const int n = 37, in = 29, out = 23;  // dy (n, out), x (n, in), w (out, in)
  std::vector<float> dy(n * out), x(n * in), w(out * in);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = std::sin(0.37f * i) * 1.3f;
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * i) - 0.2f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.05f * i + 1.0f);
  k::CpuGemm gemm(mode);
  std::vector<float> dx(n * in), dw_reused(out * in, 0.5f), dw_fresh(out * in, 0.5f);
  gemm.run(false, false, n, in, out, dy.data(), w.data(), dx.data(), false);
  gemm.run(true, false, out, in, n, dy.data(), x.data(), dw_reused.data(), true, /*reuse_a=*/true);
  gemm.run(true, false, out, in, n, dy.data(), x.data(), dw_fresh.data(), true);
  EXPECT_EQ(dw_reused, dw_fresh) << k::gemm_mode_name(mode);
  // The last call's a was dy: x is not it.
  EXPECT_THROW(gemm.run(true, false, n, in, n, x.data(), x.data(), dx.data(), false, true), Error);
}
TEST(CpuGemm, Bf16EmulatedReusesTheConvertedA) { check_reuse(k::GemmMode::kBf16Emulated); }
TEST(CpuGemm, Bf16OneDnnReusesTheConvertedA) {
  skip_without_native_bf16();
  if (IsSkipped()) return;
  check_reuse(k::GemmMode::kBf16OneDnn);
}

// linear_backward's bias gradient: the same bits as a sum of dy's rows in order (its threads own
// column ranges), and dx, dw the same bits as without one.
void check_bias_gradient(k::GemmMode mode) {
  static_assert(int64_t{131} * 101 * 97 >= k::kSmallNativeBf16Products);
  // small: rounded through sgemm; large: at least kSmallNativeBf16Products, native in oneDNN
  for (const auto& [n, in, out] : {std::tuple{37, 29, 23}, std::tuple{131, 101, 97}}) {
    const std::string what = fmt::format("{} n={} in={} out={}", k::gemm_mode_name(mode), n, in, out);
    std::vector<float> dy(static_cast<size_t>(n) * out), x(static_cast<size_t>(n) * in),
        w(static_cast<size_t>(out) * in);
    for (size_t i = 0; i < dy.size(); ++i) dy[i] = std::sin(0.37f * i) * 1.3f;
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * i) - 0.2f;
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.05f * i + 1.0f);
    std::vector<float> db(out), expected_db(out);
    for (int c = 0; c < out; ++c) expected_db[c] = db[c] = 0.25f * c - 3.0f;
    for (int i = 0; i < n; ++i) {
      for (int c = 0; c < out; ++c) expected_db[c] += dy[static_cast<size_t>(i) * out + c];
    }
    for (bool with_dx : {true, false}) {
      k::CpuGemm with_bias(mode), without_bias(mode);
      std::vector<float> dx1(static_cast<size_t>(n) * in), dx2(dx1.size()), dw1(w.size(), 0.5f), dw2(w.size(), 0.5f);
      std::vector<float> db1 = db;
      k::linear_backward(with_bias, dy.data(), x.data(), w.data(), with_dx ? dx1.data() : nullptr, dw1.data(),
                         db1.data(), n, in, out);
      k::linear_backward(without_bias, dy.data(), x.data(), w.data(), with_dx ? dx2.data() : nullptr, dw2.data(),
                         nullptr, n, in, out);
      EXPECT_EQ(db1, expected_db) << what << " dx=" << with_dx;
      EXPECT_EQ(dw1, dw2) << what << " dx=" << with_dx;
      EXPECT_EQ(dx1, dx2) << what << " dx=" << with_dx;
    }
  }
}
TEST(CpuGemm, OpenBlasFp32BiasGradient) { check_bias_gradient(k::GemmMode::kOpenBlasFp32); }
TEST(CpuGemm, OneDnnFp32BiasGradient) { check_bias_gradient(k::GemmMode::kOneDnnFp32); }
TEST(CpuGemm, Bf16EmulatedBiasGradient) { check_bias_gradient(k::GemmMode::kBf16Emulated); }
TEST(CpuGemm, Bf16OneDnnBiasGradient) {
  skip_without_native_bf16();
  if (IsSkipped()) return;
  check_bias_gradient(k::GemmMode::kBf16OneDnn);
}

}  // namespace
}  // namespace tlm::testing
