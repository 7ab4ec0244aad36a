// The reproduce report, rendered from results.json: report.md (plots as plots/*.svg beside it)
// and a self-contained report.html (plots inline), both built from one document model.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tlm::experiment {

// Another run of the same plan (other seeds, other floating-point kernels): a label and its results.
struct ComparedRun {
  std::string label;
  nlohmann::json results;
};

// Writes <dir>/report.md, <dir>/report.html and <dir>/plots/*.svg (atomically, each). With compared
// runs, a robustness table lists every finding's verdict in each, and a verdict that differs
// between them is labelled "not robust" in the findings.
void write_report(const nlohmann::json& results, const std::string& dir, const std::vector<ComparedRun>& compared = {});

}  // namespace tlm::experiment
