// The files of a run folder: log, checkpoints (written to a temporary folder, then renamed, so
// a kill mid-write leaves the previous checkpoint intact), final model, metrics, manifest.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tlm/model.h"
#include "tlm/optim.h"
#include "tlm/trainer.h"

namespace tlm {

class RunFiles {
 public:
  explicit RunFiles(std::string dir) : dir_(std::move(dir)) {}

  void start_log();
  void log(const nlohmann::json& record);
  // Drops log records of steps after `step` (a resumed run logs them again).
  void truncate_log_after(int64_t step);

  void save_checkpoint(const std::string& name, const BertModel& model, const AdamW& opt, const nlohmann::json& state,
                       const nlohmann::json& run_config, int keep);
  void save_final(const BertModel& model, const nlohmann::json& run_config, const nlohmann::json& metrics);
  void write_manifest(const TrainJob& job, const BertModel& model, const std::string& status);

 private:
  std::string dir_;
};

// Saves config.json (Hugging Face's, with the resolved tlm configuration under "tlm_run") and
// model.safetensors into dir.
void save_run_model(const std::string& dir, const BertModel& model, const nlohmann::json& run_config);

// Facts about this build and machine for manifests: version, commit, compiler, CPU, threads.
nlohmann::json build_facts();

}  // namespace tlm
