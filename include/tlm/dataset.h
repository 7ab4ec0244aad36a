// Tokenized sequences, per-label sampling, and the batches the trainer consumes: packed
// sequences with MLM masks drawn fresh for every batch from our seeded RNG.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tlm/batch.h"
#include "tlm/readers.h"
#include "tlm/rng.h"
#include "tlm/tokenizer.h"

namespace tlm {

// Sequences of token ids ([CLS] ... [SEP] included), stored flat, with optional labels.
struct SequenceSet {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets{0};  // (n + 1)
  std::vector<int32_t> labels;      // (n) or empty
  std::vector<std::string> label_names;

  int64_t size() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t num_tokens() const { return static_cast<int64_t>(ids.size()); }
  std::span<const int32_t> sequence(int64_t i) const {
    return {ids.data() + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i])};
  }
  void add(std::span<const int32_t> seq, int32_t label = -1);
};

// How documents become pre-training sequences.
enum class SequenceMode {
  kFirst,  // the paper: the first max_len tokens of each document
  kChunk,  // every document cut into consecutive windows of max_len tokens
};

// Appends the sequences of one document: [CLS] pieces [SEP], at most max_len ids each.
void document_sequences(const Tokenizer& tok, const std::string& text, int max_len, SequenceMode mode,
                        SequenceSet& out);

// Tokenizes labeled examples: [CLS] text [SEP], truncated to max_len.
SequenceSet tokenize_examples(const Tokenizer& tok, const std::vector<Example>& examples,
                              const std::vector<std::string>& label_names, int max_len);

// Balanced per-label sampling with a seed: for every label, `per_label` examples drawn without
// replacement. With cap = false, a label holding fewer is an error naming it; with cap = true,
// that label gives all it has and `capped` lists it.
struct Sample {
  std::vector<int64_t> indices;     // into the source, grouped by label, shuffled within
  std::vector<std::string> capped;  // "label: had N of M asked"
};
Sample sample_per_label(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                        int64_t per_label, uint64_t seed, bool cap);

// A seeded per-label split of one labeled set into disjoint train and test samples.
struct Split {
  Sample train, test;
};
Split split_per_label(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                      int64_t per_label_train, int64_t per_label_test, uint64_t seed, bool cap);

struct MaskingOptions {
  double mask_prob = 0.15;    // share of non-special tokens selected
  double mask_token = 0.8;    // of the selected: replaced by [MASK]
  double random_token = 0.1;  // replaced by a random id (uniform over the vocabulary, as HF's
                              // DataCollatorForLanguageModeling); the rest keep their id
  int max_targets = 0;        // > 0: at most this many targets per batch (the buffers' size); the
                              // trainer sets it 6 standard deviations above the mean, so it binds
                              // about once in 10^9 batches
};

// Fills batch with the sequences `which` of `set` (their indices become batch.sequence_ids) and
// draws the MLM mask: every non-special token is selected with mask_prob, then 80/10/10. Each
// token's draws are a pure function of (key, its sequence's index in `set`, its position), so a
// sequence is masked alike in any batch or shard (the trainer's key is mix_key(seed, step)).
// Over the whole batch: at most options.max_targets targets (the first ones in batch order), and
// at least one (a candidate chosen from the key) when no token was selected. Special ids (the
// vocabulary's five) are never selected.
void make_mlm_batch(const SequenceSet& set, std::span<const int64_t> which, const Vocab& vocab,
                    const MaskingOptions& options, uint64_t key, Batch& batch);
// Fills batch with the sequences `which` of `set`, packed, without targets (inference).
void make_batch(const SequenceSet& set, std::span<const int64_t> which, Batch& batch);
// Fills batch with the sequences and their labels (classification).
void make_classification_batch(const SequenceSet& set, std::span<const int64_t> which, Batch& batch);
// The sequences [first, end) of a batch with their targets (MLM positions rebased, labels): a
// data-parallel shard. Computing every shard with the loss scale of the whole batch and summing
// the gradients equals the whole batch's step (masks and dropout follow sequence ids).
void shard_of_batch(const Batch& whole, int first, int end, Batch& shard);

// A seeded shuffle of 0..n-1 (Fisher-Yates with our RNG), one per epoch.
std::vector<int64_t> shuffled_order(int64_t n, Rng& rng);

}  // namespace tlm
