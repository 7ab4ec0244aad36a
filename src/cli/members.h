// Fine-tuned run folders loaded as one classifier or the members of a committee, and labeled
// data tokenized for them (eval, predict, bench latency).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/tokenizer.h"

namespace tlm::cli {

// The members of a committee: classifiers sharing labels and vocabulary.
struct Members {
  std::vector<std::string> dirs;
  std::vector<std::string> labels;
  std::unique_ptr<Vocab> vocab;
};

Members load_members(const std::vector<std::string>& dirs);

// `data` read in `format`, its labels mapped by name onto the members' label ids, tokenized to
// max_len; with per_label > 0, that many examples per label drawn with `seed` (as finetune draws
// its test sample, so a committee is scored on the very examples its members were), or all a
// short label has with `cap`.
SequenceSet labeled_set_for(const Members& m, const std::string& data, const std::string& format,
                            const std::string& classes, int max_len, int64_t per_label, uint64_t seed,
                            bool cap = false);

}  // namespace tlm::cli
