// The experiment plans built into tlm (presets/*.toml, embedded at build time).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tlm::experiment {

// (name, TOML text) of every preset, in a fixed order.
const std::vector<std::pair<std::string, std::string>>& embedded_presets();

}  // namespace tlm::experiment
