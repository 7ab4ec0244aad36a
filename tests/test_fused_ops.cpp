// Fused ops (kernels.h) give the bits of the ops they fuse, run one after another: so the golden
// and finite-difference checks of those ops, and every bit-exact run and resume, carry over.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace tlm::testing {
namespace {

namespace k = kernels;

TEST(FusedOps, DropoutResidualLayerNormEqualsItsParts) {
  const int n = 37, c = 48;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  auto random = [&](size_t size) {
    std::vector<float> v(size);
    for (auto& x : v) x = dist(rng);
    return v;
  };
  const std::vector<float> x0 = random(size_t{n} * c), resid = random(size_t{n} * c), gamma = random(c),
                           beta = random(c);
  std::vector<uint64_t> row_keys(n);
  for (int i = 0; i < n; ++i) row_keys[i] = 1000 + 7 * static_cast<uint64_t>(i);
  for (const float p : {0.0f, 0.1f, 0.5f}) {
    // the parts
    std::vector<float> xa = x0, ya(x0.size()), ma(n), ra(n);
    k::dropout_apply(xa.data(), n, c, p, 42, row_keys.data());
    k::add_inplace(xa.data(), resid.data(), static_cast<int64_t>(xa.size()));
    k::layernorm_forward(xa.data(), gamma.data(), beta.data(), ya.data(), ma.data(), ra.data(), n, c, 1e-12f);
    // fused
    std::vector<float> xb = x0, yb(x0.size()), mb(n), rb(n);
    k::dropout_residual_layernorm_forward(xb.data(), resid.data(), gamma.data(), beta.data(), yb.data(), mb.data(),
                                          rb.data(), n, c, 1e-12f, p, 42, row_keys.data());
    EXPECT_EQ(xa, xb) << "p " << p << ": the residual sum LayerNorm backward reads";
    EXPECT_EQ(ya, yb) << "p " << p;
    EXPECT_EQ(ma, mb) << "p " << p;
    EXPECT_EQ(ra, rb) << "p " << p;
    if (p > 0) {  // the mask is the keyed one: another key gives other bits
      std::vector<float> xc = x0, yc(x0.size()), mc(n), rc(n);
      k::dropout_residual_layernorm_forward(xc.data(), resid.data(), gamma.data(), beta.data(), yc.data(), mc.data(),
                                            rc.data(), n, c, 1e-12f, p, 43, row_keys.data());
      EXPECT_NE(xa, xc) << "p " << p;
    }
  }
}

}  // namespace
}  // namespace tlm::testing
