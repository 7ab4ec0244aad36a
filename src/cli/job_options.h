// A subcommand whose options come from a job schema (job_config.h): one flag per key, plus
// --config FILE (TOML, the same keys), --set key=value and --dump-config. Resolution: defaults,
// then the file, then the flags, then --set; every value is checked by the schema.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tlm/job_config.h"

namespace tlm::cli {

class JobOptions {
 public:
  JobOptions(CLI::App* cmd, const JobSchema& schema);

  // The resolved configuration after parsing; nothing when --dump-config printed it.
  std::optional<ResolvedConfig> resolve() const;
  const std::vector<std::string>& command_line() const { return argv_; }
  void set_command_line(int argc, char** argv) { argv_.assign(argv, argv + argc); }

 private:
  struct Entry {
    const Field* field;
    CLI::Option* option;
    std::shared_ptr<std::vector<std::string>> values;
    std::shared_ptr<bool> flag;
  };
  const JobSchema& schema_;
  std::vector<Entry> entries_;
  std::string config_file_;
  std::vector<std::string> sets_;
  bool dump_ = false;
  std::vector<std::string> argv_;
};

// Adds `tlm <words...>` for job kind `kind`; `run` receives the resolved configuration and the
// command line and returns the exit status.
using JobRunner = std::function<int(const ResolvedConfig&, const std::vector<std::string>& command_line)>;
CLI::App* add_job_command(CLI::App& parent, const std::string& name, const std::string& kind, int argc, char** argv,
                          int* exit_code, JobRunner run);

}  // namespace tlm::cli
