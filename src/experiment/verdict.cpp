#include "experiment/verdict.h"

namespace tlm::experiment {

std::string verdict(const Summary& effect) {
  if (effect.has_interval && effect.ci_low > 0) return "held";
  if (effect.has_interval && effect.ci_high < 0) return "did not hold";
  return "inconclusive";
}

std::string rollup(int held, int failed, int n) {
  if (n > 0 && held == n) return "held";
  if (n > 0 && failed == n) return "did not hold";
  if (held > 0 && failed > 0) return "mixed";  // never "in part" when another setting went the other way
  if (held > 0) return "held in part";
  if (failed > 0) return "did not hold in part";
  return "inconclusive";
}

CommitteeVerdict committee_verdict(const Summary& d, const double* ratio_ci) {
  CommitteeVerdict v;
  // "Matches" needs evidence: the interval must exclude a loss of more than the margin; an
  // interval too wide to tell (or none) is unclear, not a match.
  v.accuracy = !d.has_interval             ? "unclear"
               : d.ci_low >= -kMatchMargin ? "matches"
               : d.ci_high < 0             ? "worse"
                                           : "unclear";
  v.latency = !ratio_ci                       ? "not shown"
              : ratio_ci[1] <= kLatencyMargin ? "as fast"
              : ratio_ci[0] > kLatencyMargin  ? "slower"
                                              : "not shown";
  v.verdict = v.accuracy == "worse" || v.latency == "slower"      ? "did not hold"
              : v.accuracy == "matches" && v.latency == "as fast" ? "held"
                                                                  : "inconclusive";
  return v;
}

}  // namespace tlm::experiment
