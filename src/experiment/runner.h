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
  int jobs = 1;                // commands at a time on this machine
  int threads = 1;             // threads of this machine: each of `jobs` commands gets threads / jobs
  std::string device = "cpu";  // where every command computes (--device of its job)
  // When threads sit idle and nothing else can start, a trainer that has run this long is stopped
  // (it checkpoints) and continued with them. A run's bits depend on its thread count, so
  // grow_threads = false keeps every run at the threads it started with (bit-for-bit reruns).
  bool grow_threads = true;
  double grow_after_seconds = 10;
};

struct RunSummary {
  int finished = 0, skipped = 0, failed = 0, blocked = 0;
  int regrown = 0;  // trainers continued with more threads
  bool interrupted = false;
  std::vector<std::string> failures;  // "<title>: <dir>/log.txt" per failed job
};

// Runs the graph. One process: as above. Under mpirun (Comm::world() of several ranks), every
// rank calls this with the same graph: rank 0 schedules the runs over the machines (ranks on one
// machine share its threads and `jobs`; a timed run has its machine to itself), every rank
// executes the runs it is sent, and the summary is rank 0's (the other ranks' says only whether
// the job was interrupted). The experiment folder must be on a file system all ranks share.
RunSummary run_jobs(const JobGraph& graph, const RunnerOptions& options);

// Per run, what the runner recorded in <dir>/runner.json: wall seconds over all attempts, attempts.
struct RunRecord {
  double wall_seconds = 0;
  int attempts = 0;
};
RunRecord read_run_record(const std::string& out, const Job& job);

}  // namespace tlm::experiment
