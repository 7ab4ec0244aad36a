// TOML files as JSON values: run configurations and experiment plans are TOML for people and
// JSON inside (hashing, dumping, merging).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tlm {

// Parses a TOML file; errors name file:line:column.
nlohmann::json toml_file_to_json(const std::string& path);
// Parses TOML text; `source` names it in errors.
nlohmann::json toml_text_to_json(const std::string& text, const std::string& source);

}  // namespace tlm
