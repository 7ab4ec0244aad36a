// Experiment plans: a TOML description of the four experiments (E1 gap, E2 size, E3 overlap,
// E4 committee) over corpora, tasks and architectures, expanded into a graph of tlm runs.
//
// Every run is one tlm command in its own folder under <out>/runs, described by a job file: its
// configuration, checked by the job schema of its kind (job_config.h) when the plan is expanded,
// and written to <dir>/job.toml when it starts (`tlm <kind> --config <dir>/job.toml`). A run is
// named from a hash of what identifies its work (JobSchema::identity: no threads or output paths,
// and keys added later only when set), with paths relative to <out>, so the name survives moving
// the folder, and the same run reached from two experiments is one run.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tlm::experiment {

// A preset's name (demo, paper) or a TOML file, checked completely (plan_check.h). Errors name
// the file, the table and the key.
nlohmann::json load_plan(const std::string& preset_or_file);
std::vector<std::string> preset_names();
// Shrinks pre-training sizes, per-label sample sizes and epochs by `scale` (0 < scale <= 1).
void scale_plan(nlohmann::json& plan, double scale);

struct Job {
  std::string id;     // <kind>-<hash>: also the folder name under runs/
  std::string kind;   // data, texts, vocab, pretrain, finetune, overlap, committee, latency
  std::string title;  // what it is, for people
  std::string dir;    // run folder, relative to <out>
  std::string done;   // file (relative to dir) that exists once the run has finished
  // The job's tlm command: the job schema it runs (job_config.h; empty for internal work) and
  // its configuration (paths relative to <out>; threads are set by the runner).
  std::string schema;
  nlohmann::json config;
  bool trainer = false;    // pretrain/finetune: continued from its last checkpoint (auto_resume)
  bool exclusive = false;  // timed: runs alone, with every thread
  std::vector<int> deps;
  // The configuration once dependencies have finished (a committee's members are the runs whose
  // learning rate won on validation data); called with <out> when the job starts.
  std::function<nlohmann::json(const std::string& out)> late_config;
  // Work done in this process instead of a tlm command (writing a task's training texts), given
  // <out> (relative paths in the plan are relative to it) and the job's folder.
  std::function<void(const std::string& out, const std::string& dir)> internal;
  nlohmann::json tags;  // the job's place in the plan (experiment roles), for results
};

class JobGraph {
 public:
  // Adds the job unless one with its id exists; returns its index either way.
  int add(Job job);
  const std::vector<Job>& jobs() const { return jobs_; }
  const Job& at(int i) const { return jobs_[i]; }

 private:
  std::vector<Job> jobs_;
  std::map<std::string, int> index_;
};

// What the plan's experiments are made of: the runs behind each result, by role.
struct PlanRuns {
  JobGraph graph;
  nlohmann::json roles;  // experiment -> structure of job indices (see expand_plan)
};

struct ExpandOptions {
  std::string data_dir;  // absolute; empty: the plan's default (embedded data made under <out>/data)
  // The experiment's one compute precision, already resolved ("fp32" or "bf16", never "auto"):
  // every run computes in it and, when it is bf16, carries it in its identity.
  std::string precision = "fp32";
};

PlanRuns expand_plan(const nlohmann::json& plan, const ExpandOptions& options);

// runs[lr][seed] are finetune run folders (relative to out). The mean final validation accuracy
// of each rate's runs (an error names a run without one), and the rate that scores best on it
// (ties go to the first; a single rate needs no validation).
std::vector<double> mean_valid_accuracy(const std::string& out, const std::vector<std::vector<std::string>>& runs);
int choose_lr(const std::string& out, const std::vector<std::vector<std::string>>& runs);

}  // namespace tlm::experiment
