// Small builders shared by the model tests.
#pragma once

#include <cstring>
#include <vector>

#include "tlm/model.h"
#include "tlm/rng.h"

namespace tlm::testing {

// A small config for fast model-level tests; every dim distinct.
inline BertConfig small_config(Head head) {
  BertConfig c;
  c.vocab_size = 150;
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.intermediate_size = 40;
  c.max_position_embeddings = 32;
  c.head = head;
  if (head == Head::kClassification) c.labels = {"a", "b", "c"};
  return c;
}

// small_config with the paper's convolutional front-end (2 stages, an even 4x3 kernel, 3
// channels) as block 0 before one transformer layer.
inline BertConfig small_conv_config(Head head) {
  BertConfig c = small_config(head);
  c.num_hidden_layers = 1;
  c.conv = {2, 4, 3, 3};
  return c;
}

// Random sequences of the given lengths: [CLS] ids [SEP], ~20% masked (MLM) or a label each.
inline Batch random_batch(const BertConfig& cfg, const std::vector<int>& lengths, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  b.offsets.push_back(0);
  for (int len : lengths) {
    const int base = b.num_tokens();
    b.ids.push_back(cfg.cls_token_id);
    for (int i = 1; i < len - 1; ++i) b.ids.push_back(104 + static_cast<int>(rng.below(cfg.vocab_size - 104)));
    b.ids.push_back(cfg.sep_token_id);
    b.offsets.push_back(b.num_tokens());
    if (cfg.head == Head::kMaskedLM) {
      for (int i = 1; i < len - 1; ++i) {
        if (rng.uniform() < 0.2 || i == 1) {
          b.mlm_positions.push_back(base + i);
          b.mlm_labels.push_back(b.ids[base + i]);
          b.ids[base + i] = cfg.mask_token_id;
        }
      }
    } else {
      b.labels.push_back(static_cast<int>(rng.below(cfg.num_labels())));
    }
  }
  return b;
}

inline ModelLimits limits_for(const Batch& b, int max_len) {
  return {b.num_tokens(), b.num_seqs(), max_len, std::max(1, static_cast<int>(b.mlm_positions.size()))};
}

inline bool bit_identical(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace tlm::testing
