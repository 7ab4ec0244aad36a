// The reproduce report, rendered from results.json: report.md (plots as plots/*.svg beside it)
// and a self-contained report.html (plots inline), both built from one document model.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tlm::experiment {

// Writes <dir>/report.md, <dir>/report.html and <dir>/plots/*.svg (atomically, each).
void write_report(const nlohmann::json& results, const std::string& dir);

}  // namespace tlm::experiment
