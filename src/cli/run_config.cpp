#include "cli/run_config.h"

#include "tlm/check.h"
#include "tlm/toml_json.h"

namespace tlm::cli {

using nlohmann::json;

namespace {

json parse_value(const std::string& text, RunConfigOptions::Kind kind, const std::string& key) {
  using K = RunConfigOptions::Kind;
  try {
    switch (kind) {
      case K::kInt: {
        size_t used = 0;
        const long long v = std::stoll(text, &used);
        if (used != text.size()) break;
        return v;
      }
      case K::kFloat: {
        size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size()) break;
        return v;
      }
      case K::kFlag:
        if (text == "true" || text == "1") return true;
        if (text == "false" || text == "0") return false;
        break;
      case K::kString:
        return text;
      case K::kStrings:
        return json::array({text});
    }
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("{}: \"{}\" is not a valid value", key, text));
}

}  // namespace

RunConfigOptions::RunConfigOptions(CLI::App* cmd) : cmd_(cmd) {
  cmd->add_option("--config", config_file_, "TOML file with any of these keys (flags override it)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", sets_, "key=value, overriding everything else (repeatable)");
  cmd->add_flag("--dump-config", dump_, "print the resolved configuration as JSON and exit");
}

void RunConfigOptions::add(const std::string& name, Kind kind, const json& default_value, const std::string& help) {
  Entry e{
      name, kind, default_value, nullptr, std::make_shared<std::vector<std::string>>(), std::make_shared<bool>(false)};
  for (auto& c : e.key) c = c == '-' ? '_' : c;
  const std::string shown = default_value.is_null() ? "" : " [" + default_value.dump() + "]";
  if (kind == Kind::kFlag) {
    e.option = cmd_->add_flag("--" + name, *e.flag, help);
  } else {
    e.option = cmd_->add_option("--" + name, *e.values, help + shown);
    if (kind != Kind::kStrings) e.option->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  entries_.push_back(std::move(e));
}

void RunConfigOptions::set_command_line(int argc, char** argv) { argv_.assign(argv, argv + argc); }

json RunConfigOptions::resolve() const {
  json cfg = json::object();
  for (const auto& e : entries_) cfg[e.key] = e.default_value;
  auto find = [&](const std::string& key) -> const Entry& {
    for (const auto& e : entries_) {
      if (e.key == key) return e;
    }
    throw Error(fmt::format("unknown configuration key \"{}\"", key));
  };
  if (!config_file_.empty()) {
    json from_file = toml_file_to_json(config_file_);
    for (auto& [k, v] : from_file.items()) {
      const Entry& e = find(k);
      if (e.kind == Kind::kStrings && v.is_string()) v = json::array({v});
      cfg[e.key] = v;
    }
  }
  for (const auto& e : entries_) {
    if (e.kind == Kind::kFlag) {
      if (e.option->count() > 0) cfg[e.key] = *e.flag;
    } else if (e.option->count() > 0) {
      if (e.kind == Kind::kStrings) {
        cfg[e.key] = *e.values;
      } else {
        cfg[e.key] = parse_value(e.values->back(), e.kind, "--" + e.key);
      }
    }
  }
  for (const auto& s : sets_) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos) throw Error(fmt::format("--set {}: expected key=value", s));
    const Entry& e = find(s.substr(0, eq));
    cfg[e.key] = parse_value(s.substr(eq + 1), e.kind, e.key);
  }
  return cfg;
}

json semantic_part(const json& config) {
  json j = config;
  for (const char* k : {"threads", "out", "resume", "cache_dir", "log_every", "checkpoint_every", "keep_checkpoints"}) {
    j.erase(k);
  }
  return j;
}

}  // namespace tlm::cli
