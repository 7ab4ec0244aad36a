#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/vec_math.h"

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

}  // namespace
}  // namespace tlm::kernels
