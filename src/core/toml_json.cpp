#include "tlm/toml_json.h"

#include <toml++/toml.h>

#include "tlm/check.h"

namespace tlm {

using nlohmann::json;

namespace {

json to_json(const toml::node& node) {
  if (const auto* t = node.as_table()) {
    json j = json::object();
    for (const auto& [k, v] : *t) j[std::string(k.str())] = to_json(v);
    return j;
  }
  if (const auto* a = node.as_array()) {
    json j = json::array();
    for (const auto& v : *a) j.push_back(to_json(v));
    return j;
  }
  if (auto v = node.value<int64_t>(); v && node.is_integer()) return *v;
  if (auto v = node.value<double>(); v && node.is_floating_point()) return *v;
  if (auto v = node.value<bool>(); v && node.is_boolean()) return *v;
  if (auto v = node.value<std::string>()) return *v;
  throw Error(fmt::format("{}:{}: unsupported TOML value (dates and times are not used)",
                          node.source().path ? *node.source().path : "", node.source().begin.line));
}

[[noreturn]] void rethrow(const toml::parse_error& err, const std::string& source) {
  throw Error(fmt::format("{}:{}:{}: {}", source, err.source().begin.line, err.source().begin.column,
                          std::string(err.description())));
}

}  // namespace

json toml_file_to_json(const std::string& path) {
  try {
    return to_json(toml::parse_file(path));
  } catch (const toml::parse_error& err) {
    rethrow(err, path);
  }
}

json toml_text_to_json(const std::string& text, const std::string& source) {
  try {
    return to_json(toml::parse(text, source));
  } catch (const toml::parse_error& err) {
    rethrow(err, source);
  }
}

}  // namespace tlm
