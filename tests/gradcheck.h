// Finite-difference helpers shared by the kernel tests: random inputs, L = sum(y * R), and the
// comparison of a backward op with central differences of L.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "tlm/rng.h"

namespace tlm::gradcheck {

inline std::vector<float> random_vec(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Compares `analytic` with central differences of loss() w.r.t. every entry of x.
inline void expect_gradient(const char* what, const std::function<double()>& loss, std::vector<float>& x,
                            const std::vector<float>& analytic, double h = 1e-3, double tol = 1e-2) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + static_cast<float>(h);
    const double up = loss();
    x[i] = saved - static_cast<float>(h);
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    max_diff = std::max(max_diff, std::fabs(numeric - analytic[i]));
    max_ref = std::max(max_ref, std::fabs(numeric));
  }
  EXPECT_GT(max_ref, 0.0) << what << ": the gradient is identically zero, nothing was checked";
  EXPECT_LE(max_diff, tol * max_ref) << what << ": max |numeric - analytic| " << max_diff << " vs max " << max_ref;
}

}  // namespace tlm::gradcheck
