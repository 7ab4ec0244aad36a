// Runs a job graph: up to N tlm commands at a time (each in its run folder, with its own log),
// skipping runs that have finished, resuming trainer runs that were stopped or killed, and
// stopping cleanly on SIGINT/SIGTERM (running trainers checkpoint; a rerun continues them).
#pragma once

#include <string>
#include <vector>

#include "experiment/plan.h"

namespace tlm::experiment {

struct RunnerOptions {
  std::string out;             // the experiment folder (commands run with it as working directory)
  std::string tlm_exe;         // the tlm binary to run
  int jobs = 1;                // commands at a time
  int threads = 1;             // threads of the machine: each of `jobs` commands gets threads / jobs
  std::string device = "cpu";  // where every command computes (--device of its job)
};

struct RunSummary {
  int finished = 0, skipped = 0, failed = 0, blocked = 0;
  bool interrupted = false;
  std::vector<std::string> failures;  // "<title>: <dir>/log.txt" per failed job
};

RunSummary run_jobs(const JobGraph& graph, const RunnerOptions& options);

// Per run, what the runner recorded in <dir>/runner.json: wall seconds over all attempts, attempts.
struct RunRecord {
  double wall_seconds = 0;
  int attempts = 0;
};
RunRecord read_run_record(const std::string& out, const Job& job);

}  // namespace tlm::experiment
