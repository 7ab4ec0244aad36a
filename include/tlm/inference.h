// Fine-tuned runs loaded for inference, alone or as a soft committee. Each run is read with its
// own tokenizer settings (tokenizer_config.json) and its vocab.txt checked against its manifest;
// the members of a committee must share labels, vocabulary and tokenizer settings.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/model.h"
#include "tlm/readers.h"
#include "tlm/run_folder.h"

namespace tlm {

// Flags of an inference command. The runs' own case handling is always used.
struct InferenceFlags {
  int max_len = 0;  // > 0: must equal the runs' sequence length (see check_tokenizer_flags)
  bool allow_nonfinite = false;
  Device device;  // where the members compute
  Precision precision = Precision::kFp32;
};

class Committee {
 public:
  Committee(const std::vector<std::string>& dirs, const InferenceFlags& flags);

  const std::vector<std::string>& dirs() const { return dirs_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int max_len() const { return tokenizer_->options().max_len; }

  // Labeled data read in `format`, its labels mapped by name onto the members' label ids, tokenized
  // as the runs were; with per_label > 0, the test draw of a fine-tuning run (draw_test_sample) with
  // `seed`, so a committee is scored on the very examples its members were.
  SequenceSet labeled_set(const std::string& data, Format format, const std::string& classes, int64_t per_label,
                          uint64_t seed, bool cap) const;
  // Unlabeled texts, tokenized as the runs were.
  SequenceSet text_set(const std::vector<std::string>& texts) const;

  // Member i sized for batches of `batch` sequences of `set`, on a back end of its own (members
  // may run side by side).
  std::unique_ptr<BertModel> load_member(size_t i, const SequenceSet& set, int batch) const;
  // ... or sized for batches within `limits` (a server's: any texts up to its batch size).
  std::unique_ptr<BertModel> load_member(size_t i, const ModelLimits& limits) const;
  // Each member's class probabilities (n, labels) on `set`.
  std::vector<std::vector<float>> member_probabilities(const SequenceSet& set, int batch) const;

 private:
  std::vector<std::string> dirs_;
  std::vector<std::string> labels_;
  std::unique_ptr<Tokenizer> tokenizer_;
  bool allow_nonfinite_ = false;
  Device device_;
  Precision precision_;
};

}  // namespace tlm
