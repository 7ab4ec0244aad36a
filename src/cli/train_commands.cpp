// tlm pretrain and tlm finetune: parse, run the job (train_jobs.h), print a summary.
#include "cli/commands.h"
#include "cli/job_options.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/train_jobs.h"

namespace tlm::cli {

namespace {

int print_pretrain(const JobRun& r) {
  if (r.result.interrupted) return 130;
  if (!Comm::world().leader()) return 0;  // data-parallel: the leader says it once
  const auto& m = r.result.metrics;
  if (m.contains("final") && m["final"].contains("valid_mlm_loss")) {
    fmt::print("pretrain: {} steps, validation MLM loss {:.4f} (unigram baseline {:.4f}) -> {}\n", r.result.steps,
               m["final"]["valid_mlm_loss"].get<double>(), m["final"]["unigram_loss"].get<double>(), r.out);
  } else {
    fmt::print("pretrain: {} steps, final loss {:.4f} -> {}\n", r.result.steps, m.value("final_train_loss", 0.0),
               r.out);
  }
  return 0;
}

int print_finetune(const JobRun& r) {
  if (r.result.interrupted) return 130;
  if (!Comm::world().leader()) return 0;
  const auto& m = r.result.metrics;
  fmt::print("finetune: {} steps; test accuracy {:.4f}, macro-F1 {:.4f}", r.result.steps,
             m["test"]["accuracy"].get<double>(), m["test"]["macro_f1"].get<double>());
  if (m.contains("best")) {
    fmt::print(" (best epoch by {}: {}", m["best"]["chosen_by"].get<std::string>(), m["best"]["epoch"].get<int>());
    if (m["best"].contains("test_accuracy")) {  // absent with --test-every end, unless the best is the last
      fmt::print(", test accuracy {:.4f}", m["best"]["test_accuracy"].get<double>());
    }
    fmt::print(")");
  }
  fmt::print(" -> {}\n", r.out);
  return 0;
}

}  // namespace

void add_train_commands(CLI::App& app, int argc, char** argv, int* exit_code) {
  add_job_command(app, "pretrain", "pretrain", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>& cl) {
                    return print_pretrain(run_pretrain_job(c, cl));
                  });
  add_job_command(app, "finetune", "finetune", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>& cl) {
                    return print_finetune(run_finetune_job(c, cl));
                  });
}

}  // namespace tlm::cli
