// A plan checked completely when it is loaded, before any run starts: unknown tables and keys
// (with the nearest valid name suggested), types, ranges, empty lists, names of corpora, tasks
// and architectures that do not exist, and keys a plan may not set (the plan sets them per run).
// Each run's own configuration is then checked by its job schema when the plan is expanded.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tlm::experiment {

void check_plan(const nlohmann::json& plan, const std::string& source);

// Keys of [pretrain] / [finetune] / [tasks.X.finetune] / [fasttext] that the plan sets for every run
// itself.
bool plan_sets_key(const std::string& section, const std::string& key);

}  // namespace tlm::experiment
