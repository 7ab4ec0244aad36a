// The files of a run folder that training writes: log, checkpoints, final model, metrics,
// manifest.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tlm/model.h"
#include "tlm/train_loop.h"
#include "tlm/trainer.h"

namespace tlm {

// Under data parallelism every rank holds the same run, and only the leader (rank 0) writes it:
// on the other ranks these calls do nothing.
class RunFiles {
 public:
  explicit RunFiles(const TrainJob& job);

  void start_log();
  void log(const nlohmann::json& record);
  // Drops log records of steps after `step` (a resumed run logs them again).
  void truncate_log_after(int64_t step);

  // Checkpoint `step`: model, optimizer state and `state` as trainer_state.json.
  void save_checkpoint(const TrainLoop& loop, BertModel& model, const nlohmann::json& state);
  void save_final(const BertModel& model, const nlohmann::json& metrics);
  // status: running, interrupted, finished, or "failed: <reason>".
  void write_manifest(const BertModel& model, const std::string& status);

 private:
  const TrainJob& job_;
  std::string dir_;
  bool writes_;  // this process is the run's leader
};

// Saves config.json (Hugging Face's, with the resolved tlm configuration under "tlm_run") and
// model.safetensors into dir.
void save_run_model(const std::string& dir, const BertModel& model, const nlohmann::json& run_config);

}  // namespace tlm
