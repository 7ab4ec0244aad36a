// `tlm pretrain` and `tlm finetune` as library calls, from a resolved job configuration
// (job_config.h). Validate, then act: the configuration, the input files, the vocabulary's
// identity (against an --init run's manifest) and the run folder's state (under its lock: a new
// run, a run to continue, a finished run) are all checked before anything in the folder is
// written, so a refused job leaves every file of an existing run as it was (only the lock file
// and token shards the checks needed may be new). Resuming a finished run does nothing.
#pragma once

#include <string>
#include <vector>

#include "tlm/job_config.h"
#include "tlm/trainer.h"

namespace tlm {

struct JobRun {
  std::string out;                // the run folder
  bool already_finished = false;  // a finished run was asked to continue: nothing was done
  TrainResult result;             // metrics of the finished run either way
};

JobRun run_pretrain_job(const ResolvedConfig& config, const std::vector<std::string>& command_line);
JobRun run_finetune_job(const ResolvedConfig& config, const std::vector<std::string>& command_line);

}  // namespace tlm
