// Results of a reproduce run, read back from its run folders: per experiment the chosen
// learning rates, accuracies over seeds, paired gaps with 95% intervals, and a verdict per finding.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "experiment/plan.h"

namespace tlm::experiment {

// `manifest`: how the run was made (version, machine, options, wall time); stored as is.
nlohmann::json collect_results(const PlanRuns& runs, const nlohmann::json& plan, const std::string& out,
                               const nlohmann::json& manifest);

}  // namespace tlm::experiment
