// tlm eval (one model or a soft committee), tlm predict, tlm fasttext, tlm overlap: parse, run, print.
#include <iostream>

#include "cli/commands.h"
#include "cli/job_options.h"
#include "data/line_reader.h"
#include "tlm/check.h"
#include "tlm/eval_jobs.h"

namespace tlm::cli {

namespace {

int print_json(const nlohmann::json& j) {
  fmt::print("{}\n", j.dump(2));
  return 0;
}

std::vector<std::string> read_texts(const std::string& input) {
  std::vector<std::string> texts;
  if (input.empty()) {
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);
  } else {
    LineReader in(input);
    for (std::string line; in.next(line);) texts.push_back(line);
  }
  return texts;
}

}  // namespace

void add_eval_commands(CLI::App& app, int argc, char** argv, int* exit_code) {
  add_job_command(app, "eval", "eval", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>&) { return print_json(run_eval_job(c)); });
  add_job_command(app, "predict", "predict", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>&) {
                    const std::string input = c.config.at("input");
                    for (const auto& line : run_predict_job(c, [&] { return read_texts(input); })) {
                      fmt::print("{}\n", line.dump());
                    }
                    return 0;
                  });
  add_job_command(app, "fasttext", "fasttext", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>&) {
                    const nlohmann::json m = run_fasttext_job(c);
                    fmt::print("{}\n", nlohmann::json({{"chosen", m["chosen"]},
                                                       {"valid_accuracy", m["final"]["valid_accuracy"]},
                                                       {"test_accuracy", m["test"]["accuracy"]}})
                                           .dump(2));
                    return 0;
                  });
  add_job_command(
      app, "overlap", "overlap", argc, argv, exit_code,
      [](const ResolvedConfig& c, const std::vector<std::string>&) { return print_json(run_overlap_job(c)); });
}

}  // namespace tlm::cli
