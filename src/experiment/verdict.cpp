#include "experiment/verdict.h"

namespace tlm::experiment {

std::string verdict(const Summary& effect) {
  if (effect.has_interval && effect.ci_low > 0) return "held";
  if (effect.has_interval && effect.ci_high < 0) return "did not hold";
  return "inconclusive";
}

}  // namespace tlm::experiment
