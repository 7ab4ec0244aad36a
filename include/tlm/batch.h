// The model's input: packed sequences (no padding) with their targets. Built by the data layer
// (dataset.h) and read by the model (model.h); neither owns the other.
#pragma once

#include <cstdint>
#include <vector>

namespace tlm {

struct Batch {
  std::vector<int32_t> ids;       // (n) token ids of all sequences, concatenated
  std::vector<int32_t> type_ids;  // (n) or empty: all token type 0
  std::vector<int32_t> offsets;   // (b + 1) sequence s is ids[offsets[s], offsets[s+1])
  // (b) the global index of each sequence (its index in the set it was drawn from). Dropout
  // masks are keyed by it and by the position in the sequence, never by where a sequence lies in
  // the packed batch, so any split of a batch into shards computes the same step.
  std::vector<int64_t> sequence_ids;
  // masked LM: positions (into ids) of the masked tokens and their original ids
  std::vector<int32_t> mlm_positions;  // (m)
  std::vector<int32_t> mlm_labels;     // (m)
  // classification: one label per sequence
  std::vector<int32_t> labels;  // (b)

  int num_seqs() const { return offsets.empty() ? 0 : static_cast<int>(offsets.size()) - 1; }
  int num_tokens() const { return static_cast<int>(ids.size()); }
};

}  // namespace tlm
