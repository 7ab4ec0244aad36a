// Per-item predictions of a classifier or a committee on a labeled set, saved beside a run's
// metrics so that paired tests (McNemar) and error analysis can be done from the files alone:
// a safetensors file with "probs" (n, labels) F32 per model, "labels" (n) I32 and "items" (n) I64
// (a hash of each example's token ids, so two files can be checked to score the same examples in
// the same order), and the label names in its metadata.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tlm/dataset.h"

namespace tlm {

struct Predictions {
  std::vector<std::string> label_names;
  std::vector<int32_t> labels;                      // (n)
  std::vector<int64_t> items;                       // (n) token-id hash of each example
  std::map<std::string, std::vector<float>> probs;  // model name -> (n, labels)
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  // Per item: does model `name` predict the label (argmax)?
  std::vector<char> correct(const std::string& name) const;
};

Predictions predictions_of(const SequenceSet& set, std::map<std::string, std::vector<float>> probs);
void save_predictions(const std::string& path, const Predictions& p);
// Errors name the file and what is missing or misshaped.
Predictions load_predictions(const std::string& path);

}  // namespace tlm
