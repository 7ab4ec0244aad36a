// Evaluation of a model on a set: class probabilities, accuracy and friends, and the MLM
// validation loss against the unigram-frequency baseline.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/model.h"

namespace tlm {

// The label of each row of probs (n, labels): its argmax (the first of ties).
std::vector<int32_t> argmax_rows(const std::vector<float>& probs, int num_labels);
// Share of predicted (n) equal to labels (n); 0 for none.
double accuracy(const std::vector<int32_t>& predicted, const std::vector<int32_t>& labels);
// accuracy(argmax_rows(probs), labels).
double accuracy_of(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels);

struct EvalMetrics {
  double accuracy = 0, macro_f1 = 0, loss = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  nlohmann::json to_json(const std::vector<std::string>& labels) const;
};
// probs (n, labels) against labels (n): accuracy, macro-F1, mean cross-entropy, confusion.
EvalMetrics evaluate_probs(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels);

// Class probabilities (n, labels) of a classifier on a labeled or unlabeled set, in batches.
std::vector<float> predict_probs(BertModel& model, const SequenceSet& set, int batch);

// Mean MLM loss over a set with masks drawn from `seed` (validation loss), and the loss of
// predicting masked tokens from their unigram frequency in `train` alone (the baseline a
// pre-trained model must beat). Masks follow the sequences (make_mlm_batch), so the loss does not
// depend on `batch`.
struct MlmValidation {
  double loss = 0, unigram_loss = 0;
  int64_t targets = 0;
};
MlmValidation validate_mlm(BertModel& model, const SequenceSet& valid, const SequenceSet& train, const Vocab& vocab,
                           const MaskingOptions& masking, int batch, uint64_t seed);

// Model sizes for sets: the largest batch of `batch` sequences of `set` (its longest sequences),
// and for MLM a target bound 6 standard deviations above the mean mask count.
ModelLimits limits_for_set(const SequenceSet& set, int batch, bool mlm, double mask_prob);
// Limits covering both (elementwise maximum).
ModelLimits merge_limits(ModelLimits a, const ModelLimits& b);

}  // namespace tlm
