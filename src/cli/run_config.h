// Run configuration for the training commands: defaults, then a TOML file (--config), then the
// flags given on the command line, then --set key=value; --dump-config prints the result.
// Keys are the long flag names with '_' for '-' (e.g. per_label_train).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tlm::cli {

class RunConfigOptions {
 public:
  enum class Kind { kInt, kFloat, kString, kStrings, kFlag };
  explicit RunConfigOptions(CLI::App* cmd);

  // Registers --name bound to key name (dashes become underscores), with its default.
  void add(const std::string& name, Kind kind, const nlohmann::json& default_value, const std::string& help);
  // The resolved configuration after parsing.
  nlohmann::json resolve() const;
  bool dump_requested() const { return dump_; }
  const std::vector<std::string>& command_line() const { return argv_; }
  void set_command_line(int argc, char** argv);

 private:
  struct Entry {
    std::string key;
    Kind kind;
    nlohmann::json default_value;
    CLI::Option* option;
    std::shared_ptr<std::vector<std::string>> values;
    std::shared_ptr<bool> flag;
  };
  CLI::App* cmd_;
  std::vector<Entry> entries_;
  std::string config_file_;
  std::vector<std::string> sets_;
  bool dump_ = false;
  std::vector<std::string> argv_;
};

// Keys that do not change results (threads, output folder, resume, cache): left out of the
// configuration a resume must match.
nlohmann::json semantic_part(const nlohmann::json& config);

}  // namespace tlm::cli
