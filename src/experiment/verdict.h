// The verdict rule of the experiments, over summary statistics (tlm/stats.h).
#pragma once

#include <string>

#include "tlm/stats.h"

namespace tlm::experiment {

using tlm::Summary;

// A finding's verdict from the 95% interval of an effect that should be positive: "held"
// (interval above 0), "did not hold" (interval below 0), or "inconclusive" (an interval holding 0,
// one seed, or no interval because every seed gave the same value).
std::string verdict(const Summary& effect);

// F1's roll-up over n settings, `held` of which held and `failed` significantly did not: "held" or
// "did not hold" when all agree, "mixed" when some held and some significantly did not, "held in
// part" / "did not hold in part" when the rest are inconclusive, else "inconclusive".
std::string rollup(int held, int failed, int n);

// F4's rule. Accuracy: the 95% interval of committee minus deep accuracy, paired over seeds,
// "matches" above -margin, "worse" when below 0 altogether, else "unclear" (none: "unclear").
// Latency: the 95% interval of the committee's single-text latency over the deep model's is
// "as fast" when its upper bound is <= the latency margin, "slower" when its lower bound is
// above it, else "not shown". Held: matches and as fast; did not hold: worse or slower.
constexpr double kMatchMargin = 0.02;
constexpr double kLatencyMargin = 1.10;
struct CommitteeVerdict {
  std::string accuracy, latency, verdict;
};
// ratio_ci: the latency ratio's interval, if it has one.
CommitteeVerdict committee_verdict(const Summary& difference, const double* ratio_ci);

}  // namespace tlm::experiment
