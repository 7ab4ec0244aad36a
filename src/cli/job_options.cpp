#include "cli/job_options.h"

#include "cli/threads.h"
#include "tlm/check.h"

namespace tlm::cli {

using nlohmann::json;

JobOptions::JobOptions(CLI::App* cmd, const JobSchema& schema) : schema_(schema) {
  cmd->add_option("--config", config_file_, "TOML file with any of these keys (flags override it)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", sets_, "key=value, overriding everything else (repeatable)");
  cmd->add_flag("--dump-config", dump_, "print the resolved configuration as JSON and exit");
  for (const Field& f : schema.fields()) {
    Entry e{&f, nullptr, std::make_shared<std::vector<std::string>>(), std::make_shared<bool>(false)};
    const std::string shown = f.default_value.is_null() || f.required ? (f.required ? " (required)" : "")
                                                                      : " [" + f.default_value.dump() + "]";
    if (f.type == FieldType::kBool) {
      e.option = cmd->add_flag(flag_of(f.key), *e.flag, f.help);
    } else {
      const std::string allowed = f.choices.empty() ? "" : fmt::format(" ({})", fmt::join(f.choices, ", "));
      e.option = cmd->add_option(flag_of(f.key), *e.values, f.help + allowed + shown);
      const char* type = f.type == FieldType::kInt      ? "INT"
                         : f.type == FieldType::kFloat  ? "NUMBER"
                         : f.type == FieldType::kInts   ? "INT,..."
                         : f.type == FieldType::kFloats ? "NUMBER,..."
                                                        : "TEXT";
      e.option->type_name(type);
      const bool list = f.type == FieldType::kStrings || f.type == FieldType::kInts || f.type == FieldType::kFloats;
      if (!list) e.option->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    entries_.push_back(std::move(e));
  }
}

std::optional<ResolvedConfig> JobOptions::resolve() const {
  ConfigResolver r(schema_);
  if (!config_file_.empty()) r.apply_file(config_file_);
  for (const auto& e : entries_) {
    if (e.option->count() == 0) continue;
    const std::string where = flag_of(e.field->key);
    if (e.field->type == FieldType::kBool) {
      r.apply_json({{e.field->key, *e.flag}}, where);
    } else if (e.field->type == FieldType::kStrings) {
      r.apply_json({{e.field->key, *e.values}}, where);  // a repeated flag gives the list
    } else if (e.field->type == FieldType::kInts || e.field->type == FieldType::kFloats) {
      r.apply_text(e.field->key, fmt::format("{}", fmt::join(*e.values, ",")), where);  // repeated or 1,2,3
    } else {
      r.apply_text(e.field->key, e.values->back(), where);
    }
  }
  for (const auto& s : sets_) r.apply_set(s);
  if (dump_) {  // also a configuration still missing required keys, to be completed in a file
    fmt::print("{}\n", r.partial().config.dump(2));
    return std::nullopt;
  }
  return r.result();
}

CLI::App* add_job_command(CLI::App& parent, const std::string& name, const std::string& kind, int argc, char** argv,
                          int* exit_code, JobRunner run) {
  const JobSchema& schema = job_schema(kind);
  CLI::App* cmd = parent.add_subcommand(name, schema.summary());
  auto options = std::make_shared<JobOptions>(cmd, schema);
  options->set_command_line(argc, argv);
  cmd->callback([options, exit_code, run] {
    const auto resolved = options->resolve();
    if (!resolved) return;
    if (resolved->config.contains("threads")) set_threads(resolved->config.at("threads"));
    *exit_code = run(*resolved, options->command_line());
  });
  return cmd;
}

}  // namespace tlm::cli
