// Checkpoints of a training run, and the one rule for what counts as one.
//
// <run>/checkpoints/step-NNNNNNNNN/ holds the model folder (config.json, model.safetensors),
// optimizer.safetensors (AdamW moments, versioned; optim.h) and trainer_state.json. It is written into a
// temporary folder step-NNNNNNNNN.tmp-PID and renamed, so a folder is a complete checkpoint iff
// its name is exactly "step-" and nine digits and it holds trainer_state.json; anything else under
// checkpoints/ is a partial write that a kill left behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tlm {

std::string checkpoint_name(int64_t step);  // step-NNNNNNNNN
bool is_complete_checkpoint(const std::string& dir);
// Complete checkpoint folders of a run, oldest first; the newest, or "" when there is none.
std::vector<std::string> complete_checkpoints(const std::string& run_dir);
std::string latest_checkpoint(const std::string& run_dir);
// Removes what partial writes left under <run>/checkpoints (call with the run's lock held);
// returns how many folders went.
int remove_partial_checkpoints(const std::string& run_dir);

// Writes checkpoint `step` of a run: `write(tmp)` fills a temporary folder (trainer_state.json
// last), which is then renamed into place; all but the newest `keep` checkpoints are removed.
// Tests may set TLM_FAULT_INJECT=kill-before-checkpoint-rename[:STEP] to SIGKILL the process
// between the last write and the rename (the window a kill can hit), at every checkpoint or at
// the one of STEP.
void write_checkpoint(const std::string& run_dir, int64_t step, int keep,
                      const std::function<void(const std::string& tmp)>& write);

}  // namespace tlm
