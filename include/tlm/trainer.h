// The training loop shared by pre-training (MLM) and fine-tuning (classification): seeded and
// resumable (every random stream is a function of the seed and the step, so a checkpoint's step
// is the whole data cursor), with logs, periodic checkpoints and a clean stop on SIGINT/SIGTERM.
//
// A run folder holds: config.json (Hugging Face's, with the resolved tlm configuration under
// "tlm_run"), model.safetensors (the final model, loadable by transformers), log.jsonl (one
// JSON object per logged step or epoch), metrics.json, manifest.json, and checkpoints/step-N/
// (model, optimizer state, trainer_state.json), the last `keep` of them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/model.h"
#include "tlm/optim.h"

namespace tlm {

constexpr int kTrainerStateVersion = 1;

struct TrainOptions {
  int epochs = 1;
  int batch = 32;
  double lr = 5e-5;
  double weight_decay = 0.01;
  double warmup = 0.0;  // < 1: share of the total steps; >= 1: steps
  double clip = 1.0;    // global-norm clipping (0: off)
  uint64_t seed = 1;
  int64_t max_steps = 0;         // > 0: stop after this many steps (the schedule still spans the epochs)
  int64_t checkpoint_every = 0;  // steps; 0: only at the end
  int keep_checkpoints = 2;
  int64_t log_every = 10;
  MaskingOptions masking;
  std::vector<std::string> no_decay;
};

struct TrainJob {
  nlohmann::json run_config;  // the resolved configuration, stored with the run
  BertConfig model;
  const Vocab* vocab = nullptr;
  SequenceSet train;
  SequenceSet test;      // fine-tuning: evaluated after every epoch (may be empty)
  SequenceSet valid;     // fine-tuning: held out from the training data; when given, the best epoch
                         // is chosen on it, never on the test set
  std::string init_dir;  // fine-tuning from a pre-trained checkpoint: its encoder is loaded
  TrainOptions options;
  std::string out_dir;
  bool resume = false;
  std::vector<std::string> command_line;
  nlohmann::json data_hashes;  // recorded in the manifest
};

struct EvalMetrics {
  double accuracy = 0, macro_f1 = 0, loss = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  nlohmann::json to_json(const std::vector<std::string>& labels) const;
};

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0;
  bool interrupted = false;
  nlohmann::json metrics;
};

TrainResult train_model(const TrainJob& job);

// Class probabilities (n, labels) of a classifier on a labeled or unlabeled set, in batches.
std::vector<float> predict_probs(BertModel& model, const SequenceSet& set, int batch);
EvalMetrics evaluate_probs(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels);

// Mean MLM loss over a set with masks drawn from `seed` (validation loss), and the loss of
// predicting masked tokens from their unigram frequency in `train` alone (the baseline a
// pre-trained model must beat).
struct MlmValidation {
  double loss = 0, unigram_loss = 0;
  int64_t targets = 0;
};
MlmValidation validate_mlm(BertModel& model, const SequenceSet& valid, const SequenceSet& train, const Vocab& vocab,
                           const MaskingOptions& masking, int batch, uint64_t seed);

// A model folder (config.json + model.safetensors) loaded for inference, sized for `set`.
std::unique_ptr<BertModel> load_model_for(const std::string& dir, const SequenceSet& set, int batch);

}  // namespace tlm
