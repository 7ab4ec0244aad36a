// Training runs, shared by pre-training (MLM) and fine-tuning (classification): seeded and
// resumable (every random stream is a function of the seed, the step and the sequence, so a
// checkpoint's step is the whole data cursor), with logs, per-epoch evaluation, periodic
// checkpoints, a clean stop on SIGINT/SIGTERM and a stop with a checkpoint of the last finite
// state when the loss or the gradient norm stops being finite.
//
// A run folder holds: vocab.txt and tokenizer_config.json (run_folder.h), config.json (Hugging
// Face's, with the resolved tlm configuration under "tlm_run"), model.safetensors (the final
// model, loadable by transformers), log.jsonl (one JSON object per logged step or epoch),
// metrics.json, manifest.json (status: running, interrupted, finished or "failed: <reason>"),
// tlm.lock, and checkpoints/step-N/ (checkpoint.h), the last `keep` of them.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/model.h"
#include "tlm/optim.h"

namespace tlm {

constexpr int kTrainerStateVersion = 2;

struct TrainOptions {
  int epochs = 1;
  int batch = 32;
  AdamWOptions optimizer;  // lr (the peak of the schedule), weight decay, no-decay parameters
  double warmup = 0.0;     // < 1: share of the total steps; >= 1: steps (per epoch: epochs)
  // The paper's code steps the linear schedule once per epoch (every step of epoch e at
  // lr * linear_schedule(e, warmup epochs, epochs)) instead of once per optimizer step.
  bool per_epoch_schedule = false;
  double clip = 1.0;  // global-norm clipping (0: off)
  uint64_t seed = 1;
  int64_t max_steps = 0;         // > 0: stop after this many steps (the schedule still spans the epochs)
  int64_t checkpoint_every = 0;  // steps; 0: only at the end
  int keep_checkpoints = 2;
  int64_t log_every = 10;
  // Data-parallel: sum gradient buckets over the ranks while backward runs (OverlappedGradientSum).
  bool overlap_grads = false;
  double bucket_mb = 25;  // of fp32 gradients per bucket
  // Build the next step's batch on a thread of its own while a step computes (a GPU's steps leave
  // the host idle; on the CPU that thread would take a core from the step).
  bool prefetch = false;
  MaskingOptions masking;
};

// How a training run meets its folder.
enum class StartMode {
  kFresh,   // a new run (the folder holds none)
  kResume,  // continue from the latest checkpoint
};

struct TrainJob {
  nlohmann::json run_config;  // the identifying configuration, stored with the run and compared on resume
  BertConfig model;
  const Vocab* vocab = nullptr;
  SequenceSet train;
  // Pre-training: sequences held out for the validation MLM loss. Fine-tuning: examples held out
  // from the training data; when given, the best epoch is chosen on them, never on the test set.
  SequenceSet valid;
  SequenceSet test;              // fine-tuning: evaluated after every epoch, or only at the end (may be empty)
  bool test_every_epoch = true;  // false: the test set is scored once, on the final weights
  std::string init_dir;          // fine-tuning from a pre-trained run: its encoder is loaded
  bool allow_nonfinite_init = false;
  TrainOptions options;
  std::string out_dir;
  StartMode start = StartMode::kFresh;
  std::vector<std::string> command_line;
  nlohmann::json data_hashes;        // recorded in the manifest
  nlohmann::json notes;              // recorded in the manifest (e.g. capped samples)
  std::shared_ptr<Backend> backend;  // the device and precision it runs on; null: the CPU in fp32
};

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0;
  bool interrupted = false;
  nlohmann::json metrics;
};

// Runs the job in its folder (the caller holds the folder's lock). Throws on errors; an error
// after training has started marks the manifest "failed: <reason>" first.
TrainResult train_model(const TrainJob& job);

// The trainer_state.json of a checkpoint folder, checked: readable, of this version, written for a
// run of `run_config`, with fields of the right types. Errors name the file.
nlohmann::json read_trainer_state(const std::string& checkpoint_dir, const nlohmann::json& run_config);

}  // namespace tlm
