// `tlm eval`, `tlm predict`, `tlm bench latency`, `tlm fasttext` and `tlm overlap` as library calls, from a
// resolved job configuration (job_config.h). Each writes its JSON result to the configuration's
// output file when one is named (atomically) and returns it.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/job_config.h"

namespace tlm {

// One model or a soft committee on labeled data: members, committee, majority vote, accuracy by
// committee size.
nlohmann::json run_eval_job(const ResolvedConfig& config);
// One JSON object per text: the label, and with `probs` the probabilities by label name. The texts
// are read (read_texts) once the models have loaded.
std::vector<nlohmann::json> run_predict_job(const ResolvedConfig& config,
                                            const std::function<std::vector<std::string>()>& read_texts);
// Inference latency of one model or a committee (latency.h).
nlohmann::json run_latency_job(const ResolvedConfig& config);
// fastText on a fine-tuning run's samples: every setting of the grid trained and scored on the
// validation and test samples; writes <out>/metrics.json (per setting, and the setting this run's
// validation chose), <out>/test_predictions.safetensors (per setting, and "model") and
// <out>/valid_predictions.safetensors (per setting).
// A folder holding a finished run of the same configuration and data is returned as it is; one of
// another is refused. A setting fastText fails on (training diverged) is recorded as failed.
nlohmann::json run_fasttext_job(const ResolvedConfig& config);
// The fastText program: `name` as a path, or found on PATH; an error says how to install it.
std::string find_fasttext_program(const std::string& name);
// Token and word overlap of corpora with a dataset (overlap.h).
nlohmann::json run_overlap_job(const ResolvedConfig& config);

}  // namespace tlm
