// The rules by which a run draws its data, in one place for every caller (the training commands,
// eval and committees, the experiment layer, later a server or an MPI rank): the labeled samples
// of a fine-tuning run, the validation split of a pre-training run, and a run's tokenizer options.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/readers.h"
#include "tlm/tokenizer.h"

namespace tlm {

// The seeds of a fine-tuning run's samples, from its configuration: the training sample (and its
// validation split) uses sample_seed, or seed when 0; the test sample test_seed, or the sample
// seed + 1 when 0.
struct SampleSeeds {
  uint64_t sample = 1, test = 2;
};
SampleSeeds sample_seeds(const nlohmann::json& finetune_config);

struct LabeledSampleOptions {
  int64_t per_label_train = 0;  // 0: all (of what the test split leaves)
  int64_t per_label_test = 0;   // 0: all of the test file
  int64_t per_label_valid = 0;  // > 0: carved out of the training sample, per label
  bool cap = false;             // a short label gives what it has (noted) instead of failing
  SampleSeeds seeds;
};

// The draw of a fine-tuning (or fastText) run's configuration: per_label_train, per_label_test,
// valid_per_label, cap_per_label and the seeds.
LabeledSampleOptions labeled_sample_options(const nlohmann::json& config);

struct LabeledSample {
  SequenceSet train, valid, test;
  std::vector<std::string> capped;  // "label: had N of M asked", per capped draw
};

// Which examples a fine-tuning run trains, validates and tests on, from labels alone: indices
// into the training file's examples (train, valid) and into the test file's, or the training
// file's when there is none (test). The same draw whatever reads the examples: tokenized for a
// tiny model, or as text for fastText.
struct LabeledDraw {
  std::vector<int64_t> train, valid, test;
  std::vector<std::string> capped;  // "label: had N of M asked", per capped draw
};
LabeledDraw draw_labeled_indices(const std::vector<int32_t>& train_labels, const std::vector<int32_t>* test_labels,
                                 const std::vector<std::string>& label_names, const LabeledSampleOptions& options);

// draw_labeled_indices applied to tokenized examples. With a test set: per-label draws from each (the test draw is
// draw_test_sample). Without one: the test sample is drawn from `train_all` with the test seed alone (the same for
// every training seed and arm), and the training sample from the rest with the sample seed. Then the validation split,
// carved from the training sample with its own key.
LabeledSample draw_labeled_sample(const SequenceSet& train_all, const SequenceSet* test_all,
                                  const LabeledSampleOptions& options);

// The test draw of a fine-tuning run: `per_label` examples per label (0: all) drawn with
// `test_seed`, from the test file, or from the one file when there is none. From labels alone
// (the experiment layer keeps these examples out of vocabularies and corpora); eval uses the
// sample to score a committee on the examples its members saw.
Sample draw_test_indices(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                         int64_t per_label, uint64_t test_seed, bool cap);
SequenceSet draw_test_sample(const SequenceSet& test_all, int64_t per_label, uint64_t test_seed, bool cap,
                             std::vector<std::string>* capped);

// Pre-training: `valid_sequences` (-1: 5%, at most 500) held out for the validation MLM loss,
// then `sequences` (0: all the rest) for training, from one seeded shuffle of `all`.
struct PretrainSplit {
  SequenceSet train, valid;
};
PretrainSplit split_pretraining(const SequenceSet& all, int64_t sequences, int64_t valid_sequences, uint64_t seed);

// The tokenizer options of a run: case, truncation at max_len, and for FewRel data its entity
// markers as added tokens.
TokenizerOptions run_tokenizer_options(bool cased, int max_len, Format format);

}  // namespace tlm
