// Small file helpers. Writes are atomic: a temp file in the same folder, fsync, then rename,
// so a crash or kill never leaves a half-written file under the final name.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace tlm {

std::string read_file(const std::string& path);
void write_file_atomic(const std::string& path, std::string_view bytes);

// Writes `parts` one after another into one file, atomically.
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);

// A JSON file; a damaged one is an error naming the file (and where the parser stopped).
nlohmann::json read_json_file(const std::string& path);

}  // namespace tlm
