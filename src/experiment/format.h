// Numbers as the results and the report write them.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>

namespace tlm::experiment {

// A share as a percentage without the sign ("12.3"), with it ("12.3%"), a difference in points ("+1.2").
inline std::string pct(const nlohmann::json& v) {
  return v.is_number() ? fmt::format("{:.1f}", 100 * v.get<double>()) : "-";
}
inline std::string percent(const nlohmann::json& v) { return pct(v) + "%"; }
inline std::string pts(const nlohmann::json& v) {
  return v.is_number() ? fmt::format("{:+.1f}", 100 * v.get<double>()) : "-";
}

// A summary (tlm/stats.h to_json) of a difference in points: "+1.1 [-2.7, +4.8]", or the mean and
// why there is no interval.
inline std::string interval(const nlohmann::json& s) {
  if (s["ci95"].is_null()) return fmt::format("{} ({})", pts(s["mean"]), s.value("note", "no interval"));
  return fmt::format("{} [{}, {}]", pts(s["mean"]), pts(s["ci95"][0]), pts(s["ci95"][1]));
}

}  // namespace tlm::experiment
