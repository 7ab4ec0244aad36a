// Summary statistics: mean, sample standard deviation and the 95% confidence interval of a mean
// (Student's t), for paired differences over seeds and for repeated timings; McNemar's exact test
// for paired per-item outcomes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace tlm {

struct Summary {
  int n = 0;
  double mean = 0, std = 0;  // std: sample standard deviation (n - 1); 0 when n < 2
  // The 95% interval of the mean. It exists only for n >= 2 values that vary: identical values
  // (a zero standard deviation) give no interval, and say so, rather than a zero-width one.
  bool has_interval = false;
  double ci_low = 0, ci_high = 0;  // equal to the mean when there is no interval
};

Summary summarize(const std::vector<double>& values);
// Two-sided 95% quantile of Student's t with `df` degrees of freedom (df >= 1), computed (not
// tabulated) from the distribution function below.
double t_quantile_95(int df);
// P(|T| > t) for Student's t with `df` degrees of freedom.
double t_two_sided_p(double t, int df);

// {"n", "mean", "std", "ci95": [low, high] or null, and "note" when there is no interval}.
nlohmann::json to_json(const Summary& s);

// McNemar's exact test: b items only the first model got right, c only the second; the two-sided
// p-value of b against Binomial(b + c, 1/2) (1 when b + c == 0).
double mcnemar_exact_p(int64_t b, int64_t c);

}  // namespace tlm
