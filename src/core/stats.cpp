#include "tlm/stats.h"

#include <algorithm>
#include <cmath>

#include "tlm/check.h"

namespace tlm {

namespace {

// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
// which converges fast for x < (a + 1) / (a + b + 2); the symmetry I_x(a, b) = 1 - I_(1-x)(b, a)
// covers the rest.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  constexpr double kTiny = 1e-300;
  double f = 1, c = 1, d = 0;
  for (int i = 0; i <= 400; ++i) {
    const int m = i / 2;
    const double numerator = i == 0       ? 1
                             : i % 2 == 0 ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                                          : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + numerator * d;
    d = 1 / (std::fabs(d) < kTiny ? kTiny : d);
    c = 1 + numerator / (std::fabs(c) < kTiny ? kTiny : c);
    f *= c * d;
    if (std::fabs(1 - c * d) < 1e-15) break;
  }
  return front * (f - 1);
}

}  // namespace

double t_two_sided_p(double t, int df) {
  TLM_CHECK(df >= 1, "Student's t needs df >= 1, got {}", df);
  return incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
}

double t_quantile_95(int df) {
  TLM_CHECK(df >= 1, "t quantile needs df >= 1, got {}", df);
  // P(|T| > t) falls with t: bisect for 0.05 between the normal's 1.96 and t(1)'s 12.71.
  double lo = 1.9, hi = 13.0;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (t_two_sided_p(mid, df) > 0.05 ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  // Identical values: their differences from the mean are rounding noise, not variation.
  const bool varies = s.n > 1 && s.std > 1e-12 * std::max(1.0, std::fabs(s.mean));
  s.has_interval = varies;
  const double half = varies ? t_quantile_95(s.n - 1) * s.std / std::sqrt(static_cast<double>(s.n)) : 0.0;
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

nlohmann::json to_json(const Summary& s) {
  nlohmann::json j = {{"n", s.n}, {"mean", s.mean}, {"std", s.std}};
  if (s.has_interval) {
    j["ci95"] = {s.ci_low, s.ci_high};
  } else {
    j["ci95"] = nullptr;
    j["note"] = s.n < 2 ? "one value: no interval" : "the same value for every seed: no interval";
  }
  return j;
}

double mcnemar_exact_p(int64_t b, int64_t c) {
  TLM_CHECK(b >= 0 && c >= 0, "McNemar counts must be non-negative");
  const int64_t n = b + c, k = std::min(b, c);
  if (n == 0) return 1.0;
  // P(X <= k) for X ~ Binomial(n, 1/2), summed in logs (n may be in the thousands).
  double tail = 0;
  for (int64_t i = 0; i <= k; ++i) {
    tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) - n * std::log(2.0));
  }
  return std::min(1.0, 2.0 * tail);
}

}  // namespace tlm
