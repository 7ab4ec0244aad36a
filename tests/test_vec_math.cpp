#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "tlm/check.h"
#include "tlm/rng.h"

namespace tlm::kernels {
namespace {

// exp_approx replaces libm's exp in softmax and cross-entropy; it must stay within a few ulp.
TEST(VecMath, ExpApproxIsWithinTwoUlp) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
    const double ref = std::exp(static_cast<double>(x));
    const double rel = std::fabs(exp_approx(x) - ref) / ref;
    worst = std::max(worst, rel);
  }
  EXPECT_LE(worst, 2 * 1.19e-7) << "worst relative error " << worst;  // 2 ulp at the top of a binade
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  EXPECT_LT(exp_approx(-1000.0f), 1e-37f);  // underflow clamps to ~0, never NaN
  EXPECT_FALSE(std::isinf(exp_approx(1000.0f)));
}

TEST(VecMath, RowExpSumMatchesDouble) {
  std::vector<float> row(1000);
  for (int i = 0; i < 1000; ++i) row[i] = std::sin(i * 0.37f) * 20.0f;
  float mx;
  const double sum = row_exp_sum(row.data(), 1000, &mx);
  double ref = 0, ref_mx = -1e30;
  for (float v : row) ref_mx = std::max(ref_mx, double{v});
  for (float v : row) ref += std::exp(v - ref_mx);
  EXPECT_EQ(mx, ref_mx);
  EXPECT_NEAR(sum, ref, 1e-6 * ref);
}

// The storing variant (the softmaxes' single exponential pass): the same max and sum bit for bit,
// its stored values the exponentials that were summed (each within 2 ulp of exp in double of
// the float difference), in place as well as out of place, with a tail shorter than 8.
TEST(VecMath, RowExpSumToStoresTheExponentialsItSums) {
  for (int k : {1, 7, 8, 1003}) {
    std::vector<float> row(k), out(k, -1.0f);
    for (int i = 0; i < k; ++i) row[i] = std::sin(i * 0.37f) * 20.0f;
    float mx, mx_to;
    const double sum = row_exp_sum(row.data(), k, &mx);
    EXPECT_EQ(row_exp_sum_to(row.data(), out.data(), k, &mx_to), sum) << k;
    EXPECT_EQ(mx_to, mx) << k;
    double stored = 0;
    for (int i = 0; i < k; ++i) {
      const double want = std::exp(double{row[i] - mx});  // of the float difference, as computed
      EXPECT_LE(std::abs(out[i] - want), 2 * (std::nextafter(float(want), 1e30f) - float(want))) << k << " " << i;
      stored += out[i];
    }
    EXPECT_NEAR(stored, sum, 1e-12 * sum) << k;
    std::vector<float> in_place = row;
    EXPECT_EQ(row_exp_sum_to(in_place.data(), in_place.data(), k, &mx_to), sum) << k;
    EXPECT_EQ(in_place, out) << k;
  }
}

}  // namespace
}  // namespace tlm::kernels

namespace tlm::kernels {
namespace {

// The vectorised GELU against the erf definition in double, over the range activations take.
TEST(VecMath, GeluAndItsDerivativeMatchErfDefinition) {
  std::vector<float> x, y, dx;
  for (float v = -12.0f; v <= 12.0f; v += 0.00137f) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  y.resize(n);
  dx.resize(n);
  std::vector<float> ones(n, 1.0f);
  gelu_span(x.data(), y.data(), n);
  gelu_backward_span(ones.data(), x.data(), dx.data(), n);
  double worst_y = 0, worst_d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double ref = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    const double dref = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    // Relative to the size of the terms: the derivative is a sum of two terms that cancel near
    // x = -0.75 (where fp32 itself cannot do better than the terms' rounding), and both tails
    // go to 0; below 1e-3 the error is judged in absolute terms.
    const double cdf_term = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0)));
    worst_y = std::max(worst_y, std::fabs(y[i] - ref) / std::max(std::fabs(ref), 1e-3));
    worst_d = std::max(worst_d, std::fabs(dx[i] - dref) / std::max({std::fabs(dref), cdf_term, 1e-3}));
  }
  EXPECT_LE(worst_y, 2e-6) << "GELU";  // ~1e-7 erfc fit plus fp32 rounding of exp(-z^2) at |z| ~ 3
  EXPECT_LE(worst_d, 2e-6) << "GELU derivative";
}

}  // namespace
}  // namespace tlm::kernels

namespace tlm::kernels {
namespace {

// The 16-float kernels (x86-64-v4) against the 8-float ones: the same bits, for every tail length
// around both vector widths, a vocabulary-sized row, in place, and values below exp's lower clamp.
TEST(VecMath, SixteenFloatVectorsGiveTheBitsOfEight) {
  if (vector_floats() < 16) GTEST_SKIP() << "this CPU (or TLM_MAX_CPU_ISA) has no x86-64-v4: nothing wide to compare";
  Rng rng(7);
  std::vector<int> lengths;
  for (int k = 1; k <= 40; ++k) lengths.push_back(k);
  for (int k : {127, 128, 129, 1003, 30522}) lengths.push_back(k);
  for (int k : lengths) {
    std::vector<float> row(static_cast<size_t>(k));
    for (float& v : row) v = static_cast<float>(60 * rng.uniform() - 30);
    if (k > 3) row[static_cast<size_t>(k) / 2] = -200.0f;  // below exp's clamp after the max is taken
    float mx8, mx16;
    std::vector<float> out8(row.size()), out16(row.size()), in_place = row;
    const double s8 = row_exp_sum(row.data(), k, &mx8, 8), s16 = row_exp_sum(row.data(), k, &mx16, 16);
    EXPECT_EQ(std::memcmp(&s8, &s16, sizeof(double)), 0) << k;
    EXPECT_EQ(mx8, mx16) << k;
    const double t8 = row_exp_sum_to(row.data(), out8.data(), k, &mx8, 8);
    const double t16 = row_exp_sum_to(row.data(), out16.data(), k, &mx16, 16);
    EXPECT_EQ(std::memcmp(&t8, &t16, sizeof(double)), 0) << k;
    EXPECT_EQ(std::memcmp(out8.data(), out16.data(), sizeof(float) * row.size()), 0) << k;
    const double p16 = row_exp_sum_to(in_place.data(), in_place.data(), k, &mx16, 16);
    EXPECT_EQ(std::memcmp(&p16, &t8, sizeof(double)), 0) << k;
    EXPECT_EQ(std::memcmp(in_place.data(), out8.data(), sizeof(float) * row.size()), 0) << k;

    std::vector<float> dy(row.size()), g8(row.size()), g16(row.size());
    for (float& v : dy) v = static_cast<float>(2 * rng.uniform() - 1);
    for (float& v : row) v /= 3;  // GELU's inputs: both tails and the middle
    gelu_span(row.data(), g8.data(), k, 8);
    gelu_span(row.data(), g16.data(), k, 16);
    EXPECT_EQ(std::memcmp(g8.data(), g16.data(), sizeof(float) * row.size()), 0) << "GELU " << k;
    gelu_backward_span(dy.data(), row.data(), g8.data(), k, 8);
    gelu_backward_span(dy.data(), row.data(), g16.data(), k, 16);
    EXPECT_EQ(std::memcmp(g8.data(), g16.data(), sizeof(float) * row.size()), 0) << "GELU backward " << k;
  }
}

TEST(VecMath, AWidthTheCpuLacksIsRefused) {
  float mx;
  const float row[3] = {1, 2, 3};
  EXPECT_THROW(row_exp_sum(row, 3, &mx, 4), Error);
  if (vector_floats() < 16) {
    EXPECT_THROW(row_exp_sum(row, 3, &mx, 16), Error);
  }
}

}  // namespace
}  // namespace tlm::kernels
