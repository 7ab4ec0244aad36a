// A model or a soft committee run on batches of a tokenized set: members one after another (each
// with every thread) or side by side (one member per thread, as one wide pass). Each member's
// probabilities are kept beside the committee's mean. What bench latency times and serve runs.
#pragma once

#include <cstdint>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/model.h"

namespace tlm {

enum class CommitteeMode { kSequential, kConcurrent };

class CommitteeRunner {
 public:
  // members: classifiers with the same labels, each sized for the batches it will be given.
  // threads: what side-by-side mode may use (min(members, threads) members at once).
  CommitteeRunner(std::vector<BertModel*> members, CommitteeMode mode, int threads);

  // Every member on set[which]; `mean` gets the committee's probabilities (which.size(), labels).
  void predict(const SequenceSet& set, const std::vector<int64_t>& which, std::vector<float>& mean);
  // Member m's probabilities (which.size(), labels) of the last predict.
  const std::vector<float>& member_probs(size_t m) const { return probs_.at(m); }
  int labels() const { return labels_; }

 private:
  std::vector<BertModel*> members_;
  CommitteeMode mode_;
  int threads_;
  int labels_;
  Batch batch_;
  std::vector<std::vector<float>> probs_;
};

}  // namespace tlm
