#include "tlm/stats.h"

#include <algorithm>
#include <cmath>

#include "tlm/check.h"

namespace tlm {

double t_quantile_95(int df) {
  TLM_CHECK(df >= 1, "t quantile needs df >= 1, got {}", df);
  // Two-sided 95% (upper 97.5%) quantiles of Student's t for df = 1..30.
  static const double kTable[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                    2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                    2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df <= 30) return kTable[df - 1];
  if (df <= 60) return 2.042 + (2.000 - 2.042) * (df - 30) / 30.0;   // t(60) = 2.000
  if (df <= 120) return 2.000 + (1.980 - 2.000) * (df - 60) / 60.0;  // t(120) = 1.980
  return 1.960;
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
