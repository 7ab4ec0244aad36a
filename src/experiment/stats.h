// Summary statistics for results over seeds: mean, sample standard deviation, and the 95%
// confidence interval of a mean (Student's t), used for paired differences between arms.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace tlm::experiment {

struct Summary {
  int n = 0;
  double mean = 0, std = 0;        // std: sample standard deviation (n - 1); 0 when n < 2
  double ci_low = 0, ci_high = 0;  // 95% interval of the mean; equal to the mean when n < 2
};

Summary summarize(const std::vector<double>& values);
// Two-sided 95% quantile of Student's t with `df` degrees of freedom (df >= 1).
double t_quantile_95(int df);

nlohmann::json to_json(const Summary& s);

// A finding's verdict from the 95% interval of an effect that should be positive:
// "held" (interval above 0), "did not hold" (interval below 0), or "inconclusive".
std::string verdict(const Summary& effect);

}  // namespace tlm::experiment
