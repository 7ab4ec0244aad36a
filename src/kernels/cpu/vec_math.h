// Float math written with GCC vector extensions so it compiles to SIMD on any x86-64 level
// (no libm calls inside hot loops), and the row kernels built on it. Each row kernel is
// compiled for x86-64-v4 (AVX-512), v3 (AVX2) and baseline (GCC target_clones: the loader picks
// the one for the running CPU), so no global -march is needed; the four declared after
// vector_floats() also have 16-float versions that vec_math.cpp picks at run time.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TLM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TLM_CLONES
#endif

// The 8-wide helpers below are always inlined into the row kernels, so the vector-ABI note GCC
// gives for 32-byte vectors in baseline (SSE) code does not apply (-Wno-psabi in cmake/).
namespace tlm::kernels {

using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));
using f64x4 = double __attribute__((vector_size(32)));
// 16 floats: one AVX-512 register. Used only in code compiled for x86-64-v4 (where
// vector_floats() is 16): it halves the instructions of the row kernels; elsewhere, f32x8.
using f32x16 = float __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));
using f64x8 = double __attribute__((vector_size(64)));

[[gnu::always_inline]] inline int32_t to_int(float x) { return static_cast<int32_t>(x); }
[[gnu::always_inline]] inline i32x8 to_int(f32x8 x) { return __builtin_convertvector(x, i32x8); }
[[gnu::always_inline]] inline i32x16 to_int(f32x16 x) { return __builtin_convertvector(x, i32x16); }
[[gnu::always_inline]] inline float from_bits(int32_t b) { return std::bit_cast<float>(b); }
[[gnu::always_inline]] inline f32x8 from_bits(i32x8 b) { return reinterpret_cast<f32x8>(b); }
[[gnu::always_inline]] inline f32x16 from_bits(i32x16 b) { return reinterpret_cast<f32x16>(b); }

// exp(x) in float, within 2 ulp on [-87, 88] (Cody-Waite reduction, degree-7 Taylor polynomial);
// clamps outside that range (exp(-87.3) ~ 1e-38 stands for 0 where a softmax underflows).
// V is float, f32x8 or f32x16 (the same operations on every element, so the same bits).
template <typename V>
[[gnu::always_inline]] inline V exp_approx(V x) {
  x = x < -87.3f ? V{} - 87.3f : x;
  x = x > 88.0f ? V{} + 88.0f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const V n = (x * 1.44269504088896341f + magic) - magic;
  const V r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-6f;
  V p = V{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * from_bits((to_int(n) + 127) << 23);
}

// erfc(z) for z >= 0 with relative error ~1.2e-7 (the Chebyshev fit of Numerical Recipes'
// erfcc, evaluated in float); V is float, f32x8 or f32x16.
template <typename V>
[[gnu::always_inline]] inline V erfc_nonneg(V z) {
  const V t = 1.0f / (1.0f + 0.5f * z);
  V p = V{} + 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_approx(p - z * z);
}

// 1 + erf(x / sqrt 2), i.e. twice the standard normal CDF, with ~1e-7 relative error
// everywhere: erfc(|u|) for x < 0 (no cancellation in the left tail), 2 - erfc(u) otherwise.
template <typename V>
[[gnu::always_inline]] inline V two_phi(V x) {
  const V u = x * 0.70710678118654752f;
  const V e = erfc_nonneg(u < 0.0f ? -u : u);
  return u < 0.0f ? e : 2.0f - e;
}

[[gnu::always_inline]] inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
[[gnu::always_inline]] inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof(v)); }
// V (f32x8 or f32x16) from / to unaligned floats.
template <typename V>
[[gnu::always_inline]] inline V loadv(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename V>
[[gnu::always_inline]] inline void storev(float* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}
template <typename V>
inline constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(float));

// Eight double lanes as two 4-wide halves (one 64-byte vector does not fit an AVX2 register):
// lane_add adds f of eight float values to them, value t in lane t; lane_total adds the lanes in
// order.
struct Lanes {
  f64x4 lo{}, hi{};
};
template <typename F>
[[gnu::always_inline]] inline void lane_add(Lanes& a, f32x8 v, F f) {
  a.lo += f(__builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), f64x4));
  a.hi += f(__builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), f64x4));
}
[[gnu::always_inline]] inline double lane_total(const Lanes& a) {
  double s = 0;
  for (int t = 0; t < 4; ++t) s += a.lo[t];
  for (int t = 0; t < 4; ++t) s += a.hi[t];
  return s;
}

// The sum in double of f(v_j) over j < c, where v_j is a float value (load8(j): values j..j+7,
// load1(j): value j) and f maps doubles (f64x4 lanes or one double). Eight interleaved lanes
// (value j in lane j % 8, the lanes then added in order): eight independent chains instead of
// one, and the same bits in every clone.
template <typename Load8, typename Load1, typename F>
[[gnu::always_inline]] inline double lane_sum(int c, Load8 load8, Load1 load1, F f) {
  Lanes a;
  int j = 0;
  for (; j + 8 <= c; j += 8) lane_add(a, load8(j), f);
  double s = lane_total(a);
  for (; j < c; ++j) s += f(static_cast<double>(load1(j)));
  return s;
}

// The max of row[0..k) and sum(exp(row - max)), summed in double; with Store, exp(row - max) is
// also written to out (which may be row), so a softmax needs no second exponential. V is f32x8
// or f32x16; either way value j is added to double lane j % 8 and the lanes are added in order,
// so both widths give the same bits.
template <bool Store, typename V>
[[gnu::always_inline]] inline double exp_sum(const float* row, float* out, int k, float* max_out) {
  float mx = row[0];
  int j = 0;
  if (k >= 8) {
    f32x8 vmx = load8(row);
    for (j = 8; j + 8 <= k; j += 8) {
      const f32x8 v = load8(row + j);
      vmx = v > vmx ? v : vmx;
    }
    for (int t = 0; t < 8; ++t) mx = vmx[t] > mx ? vmx[t] : mx;
  }
  for (; j < k; ++j) mx = row[j] > mx ? row[j] : mx;
  double sum = 0;
  j = 0;
  if constexpr (kLanes<V> == 16) {
    f64x8 acc{};  // one AVX-512 register
    for (; j + 16 <= k; j += 16) {
      const f32x16 e = exp_approx(loadv<f32x16>(row + j) - mx);
      if constexpr (Store) storev(out + j, e);
      acc += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3, 4, 5, 6, 7), f64x8);
      acc += __builtin_convertvector(__builtin_shufflevector(e, e, 8, 9, 10, 11, 12, 13, 14, 15), f64x8);
    }
    if (j + 8 <= k) {
      const f32x8 e = exp_approx(load8(row + j) - mx);
      if constexpr (Store) store8(out + j, e);
      acc += __builtin_convertvector(e, f64x8);
      j += 8;
    }
    for (; j < k; ++j) {
      const float e = exp_approx(row[j] - mx);
      if constexpr (Store) out[j] = e;
      sum += e;
    }
    for (int t = 0; t < 8; ++t) sum += acc[t];
  } else {
    // Eight double lanes as two 4-wide halves: one 64-byte vector does not fit an AVX2 register,
    // and GCC's AVX2 clone spilled it to the stack every iteration. Same sums in the same order.
    Lanes acc;
    for (; j + 8 <= k; j += 8) {
      const f32x8 e = exp_approx(load8(row + j) - mx);
      if constexpr (Store) store8(out + j, e);
      lane_add(acc, e, [](f64x4 d) { return d; });
    }
    for (; j < k; ++j) {
      const float e = exp_approx(row[j] - mx);
      if constexpr (Store) out[j] = e;
      sum += e;
    }
    for (int t = 0; t < 4; ++t) sum += acc.lo[t];  // after the tail, as the wide branch adds
    for (int t = 0; t < 4; ++t) sum += acc.hi[t];
  }
  *max_out = mx;
  return sum;
}

// The widest vectors the row kernels below use here: 16 floats where cpu_isa.h's
// avx512_allowed() (x86-64-v4, not capped by TLM_MAX_CPU_ISA), else 8. Decided once.
int vector_floats();

// Row statistics for a softmax: the max of row[0..k) and sum(exp(row - max)), summed in double.
// `floats` (8, or 16 where vector_floats() is 16) picks the vectors: the same bits either way.
double row_exp_sum(const float* row, int k, float* max_out, int floats = vector_floats());

// row_exp_sum that also writes out[j] = exp(row[j] - max) (out may be row).
double row_exp_sum_to(const float* row, float* out, int k, float* max_out, int floats = vector_floats());

// row[j] *= scale for j < k.
TLM_CLONES inline void scale_row(float* row, int k, float scale) {
  int j = 0;
  for (; j + 8 <= k; j += 8) store8(row + j, scale * load8(row + j));
  for (; j < k; ++j) row[j] = scale * row[j];
}

// GELU of the W (f32x8 or f32x16) values at x, and its backward.
template <typename W>
[[gnu::always_inline]] inline void gelu_vector(const float* x, float* y) {
  const W v = loadv<W>(x);
  storev(y, 0.5f * v * two_phi(v));
}
template <typename W>
[[gnu::always_inline]] inline void gelu_backward_vector(const float* dy, const float* x, float* dx) {
  const W v = loadv<W>(x);
  const W pdf = 0.39894228040143268f * exp_approx(-0.5f * v * v);
  storev(dx, loadv<W>(dy) * (0.5f * two_phi(v) + v * pdf));
}

// GELU (erf form) over n values: y = 0.5 x (1 + erf(x / sqrt 2)). V is f32x8 or f32x16: whole
// V, then at most one f32x8, then single values, so each value takes the path it takes with
// f32x8 alone (the scalar tail groups its products differently) and both widths agree.
template <typename V>
[[gnu::always_inline]] inline void gelu_values(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes<V> <= n; i += kLanes<V>) gelu_vector<V>(x + i, y + i);
  if constexpr (kLanes<V> == 16) {
    if (i + 8 <= n) {
      gelu_vector<f32x8>(x + i, y + i);
      i += 8;
    }
  }
  for (; i < n; ++i) y[i] = 0.5f * x[i] * two_phi(x[i]);
}

// GELU backward over n values: dx = dy * (0.5 (1 + erf(x / sqrt 2)) + x * pdf(x)); the same
// paths as gelu_values.
template <typename V>
[[gnu::always_inline]] inline void gelu_backward_values(const float* dy, const float* x, float* dx, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes<V> <= n; i += kLanes<V>) gelu_backward_vector<V>(dy + i, x + i, dx + i);
  if constexpr (kLanes<V> == 16) {
    if (i + 8 <= n) {
      gelu_backward_vector<f32x8>(dy + i, x + i, dx + i);
      i += 8;
    }
  }
  for (; i < n; ++i) {
    const float v = x[i];
    dx[i] = dy[i] * (0.5f * two_phi(v) + v * 0.39894228040143268f * exp_approx(-0.5f * v * v));
  }
}

// gelu_values / gelu_backward_values with the vectors `floats` picks (as row_exp_sum's).
void gelu_span(const float* x, float* y, int64_t n, int floats = vector_floats());
void gelu_backward_span(const float* dy, const float* x, float* dx, int64_t n, int floats = vector_floats());

// Softmax backward of one row, in place: dp <- p * (dp - sum(p * dp)).
TLM_CLONES inline void softmax_backward_row(const float* p, float* dp, int n) {
  f32x8 acc{};
  int j = 0;
  for (; j + 8 <= n; j += 8) acc += load8(p + j) * load8(dp + j);
  float dot = 0;
  for (int t = 0; t < 8; ++t) dot += acc[t];
  for (; j < n; ++j) dot += p[j] * dp[j];
  j = 0;
  for (; j + 8 <= n; j += 8) store8(dp + j, load8(p + j) * (load8(dp + j) - dot));
  for (; j < n; ++j) dp[j] = p[j] * (dp[j] - dot);
}

}  // namespace tlm::kernels
