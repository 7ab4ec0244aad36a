// The runs of an experiment that this process executes: each job of the graph started as its tlm
// command in its run folder (a child process with its own log, given a number of threads), or,
// for internal work, done here. The scheduler (runner.h) decides what runs where and when; on
// several MPI ranks every rank has one of these and executes what the scheduler sends it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiment/plan.h"

namespace tlm::experiment {

struct RunnerOptions;

// A job that has ended here (its runner.json already says so): its exit code (128 + signal when
// killed), whether it wrote its done file, and the wall seconds of this attempt.
struct EndedJob {
  int job = -1;
  int code = 0;
  bool done = false;
  double wall_seconds = 0;
};

// The device of the next run: a plain `cuda` on a machine of several GPUs becomes the one running
// the fewest of this runner's jobs (`load`, one count per GPU, is raised for it; the lowest index
// on a tie); anything else (cpu, cuda:N, one GPU) is run as given and `load` is left alone.
std::string spread_device(const std::string& requested, std::vector<int>& load);

class JobProcesses {
 public:
  JobProcesses(const JobGraph& graph, const RunnerOptions& options, std::string node);

  // Starts job i with `threads` threads: its late configuration, its job file and command (or its
  // internal work, done before this returns), and a "running" record in <dir>/runner.json. The
  // rank that runs a job writes all of its record (the file system may be another host's).
  void start(int i, int threads);
  // The jobs that ended since the last call (never waits).
  std::vector<EndedJob> reap();
  // SIGTERM to a running job (a trainer checkpoints and exits 130), or to all of them.
  void stop(int i);
  void stop_all();
  bool empty() const { return running_.empty() && ended_.empty(); }

 private:
  // Records job i's end in its runner.json (finished, stopped by a signal, or failed) and queues it.
  void end(int i, int code, bool done);

  const JobGraph& g_;
  const RunnerOptions& o_;
  std::string node_;
  std::map<pid_t, int> running_;  // child -> job
  std::map<int, std::chrono::steady_clock::time_point> started_;
  std::vector<EndedJob> ended_;           // internal work and jobs that could not start
  std::vector<std::string> environment_;  // the children's: without the MPI launcher's variables
  std::vector<int> gpu_load_;             // running jobs per GPU, when `cuda` is spread over several
  std::map<int, int> gpu_of_;             // job -> the GPU it was given
};

// A job's record in <out>/<dir>/runner.json (status, attempts, wall seconds, threads by attempt,
// the machine and rank it ran on, when its last attempt started and ended, in seconds since the
// epoch), written atomically by the rank that runs the job; an empty object before its first run.
nlohmann::json read_run_record_json(const std::string& out, const Job& job);

}  // namespace tlm::experiment
