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

}  // namespace tlm::experiment
