// Sequences, per-label sampling and MLM masking statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tlm/check.h"
#include "tlm/dataset.h"

namespace tlm {
namespace {

Vocab word_vocab() {
  std::vector<std::string> t{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int i = 0; i < 95; ++i) t.push_back(fmt::format("w{}", i));
  return Vocab::from_tokens(t, "words");
}

TEST(Dataset, DocumentSequencesFirstAndChunked) {
  const Tokenizer tok(word_vocab(), {});
  std::string text;
  for (int i = 0; i < 10; ++i) text += fmt::format("w{} ", i);
  SequenceSet first, chunks;
  document_sequences(tok, text, 6, SequenceMode::kFirst, first);
  document_sequences(tok, text, 6, SequenceMode::kChunk, chunks);
  ASSERT_EQ(first.size(), 1);
  EXPECT_EQ(std::vector<int32_t>(first.sequence(0).begin(), first.sequence(0).end()),
            (std::vector<int32_t>{2, 5, 6, 7, 8, 3}));
  ASSERT_EQ(chunks.size(), 3);  // 4 + 4 + 2 word pieces
  EXPECT_EQ(chunks.sequence(2).size(), 4u);
  EXPECT_EQ(chunks.sequence(1)[1], 9);
  document_sequences(tok, "   ", 6, SequenceMode::kChunk, chunks);
  EXPECT_EQ(chunks.size(), 3) << "an empty document adds no sequence";
}

TEST(Dataset, MaskingStatisticsOverManyBatches) {
  const Vocab v = word_vocab();
  SequenceSet set;
  Rng gen(1);
  for (int s = 0; s < 64; ++s) {
    std::vector<int32_t> seq{v.cls_id()};
    for (int i = 0; i < 62; ++i) seq.push_back(5 + static_cast<int32_t>(gen.below(95)));
    seq.push_back(v.sep_id());
    set.add(seq);
  }
  std::vector<int64_t> all(64);
  for (int i = 0; i < 64; ++i) all[i] = i;
  Batch b;
  int64_t candidates = 0, selected = 0, as_mask = 0, as_random = 0, kept = 0;
  std::set<std::vector<int32_t>> distinct_masks;
  for (int round = 0; round < 200; ++round) {
    make_mlm_batch(set, all, v, MaskingOptions{}, mix_key(7, static_cast<uint64_t>(round)), b);
    distinct_masks.insert(b.mlm_positions);
    candidates += 64 * 62;
    selected += static_cast<int64_t>(b.mlm_positions.size());
    for (size_t k = 0; k < b.mlm_positions.size(); ++k) {
      const int pos = b.mlm_positions[k];
      const int32_t orig = set.ids[pos];
      ASSERT_EQ(b.mlm_labels[k], orig);
      ASSERT_FALSE(v.is_special(orig)) << "a special token was selected";
      if (b.ids[pos] == v.mask_id()) {
        ++as_mask;
      } else if (b.ids[pos] == orig) {
        ++kept;  // includes random draws that hit the same id (1 in 100)
      } else {
        ++as_random;
      }
    }
  }
  const double rate = static_cast<double>(selected) / candidates;
  EXPECT_NEAR(rate, 0.15, 0.003);  // n ~ 8e5: sd ~ 4e-4
  EXPECT_NEAR(static_cast<double>(as_mask) / selected, 0.8, 0.006);
  EXPECT_NEAR(static_cast<double>(as_random) / selected, 0.1 * 0.99, 0.005);
  EXPECT_NEAR(static_cast<double>(kept) / selected, 0.1 + 0.1 * 0.01, 0.005);
  EXPECT_EQ(distinct_masks.size(), 200u) << "masks must be drawn fresh for every batch";
}

TEST(Dataset, AtLeastOneMaskPerBatch) {
  const Vocab v = word_vocab();
  SequenceSet set;
  set.add(std::vector<int32_t>{2, 7, 3});
  const std::vector<int64_t> one{0};
  Batch b;
  make_mlm_batch(set, one, v, MaskingOptions{.mask_prob = 0.0}, 3, b);
  EXPECT_EQ(b.mlm_positions, (std::vector<int32_t>{1}));
}

// Masks are functions of (key, sequence index, position): a sequence gets the same targets and
// replacements whichever batch (or data-parallel shard) holds it, and another key draws anew.
TEST(Dataset, MasksFollowTheSequenceNotTheBatch) {
  const Vocab v = word_vocab();
  SequenceSet set;
  Rng gen(2);
  for (int s = 0; s < 12; ++s) {
    std::vector<int32_t> seq{v.cls_id()};
    for (int i = 0; i < 20 + s; ++i) seq.push_back(5 + static_cast<int32_t>(gen.below(95)));
    seq.push_back(v.sep_id());
    set.add(seq);
  }
  // The masked ids and targets of sequence `seq` inside batch b (its `slot`-th sequence).
  auto of_sequence = [](const Batch& b, int slot) {
    std::vector<int32_t> ids(b.ids.begin() + b.offsets[slot], b.ids.begin() + b.offsets[slot + 1]);
    std::vector<std::pair<int32_t, int32_t>> targets;
    for (size_t k = 0; k < b.mlm_positions.size(); ++k) {
      const int pos = b.mlm_positions[k];
      if (pos >= b.offsets[slot] && pos < b.offsets[slot + 1])
        targets.emplace_back(pos - b.offsets[slot], b.mlm_labels[k]);
    }
    return std::pair{ids, targets};
  };
  Batch whole, part, other;
  std::vector<int64_t> all(12);
  for (int i = 0; i < 12; ++i) all[i] = i;
  const std::vector<int64_t> some{9, 4, 7};
  make_mlm_batch(set, all, v, MaskingOptions{}, 11, whole);
  make_mlm_batch(set, some, v, MaskingOptions{}, 11, part);
  make_mlm_batch(set, some, v, MaskingOptions{}, 12, other);
  EXPECT_EQ(part.sequence_ids, some);
  for (int slot = 0; slot < 3; ++slot) {
    EXPECT_EQ(of_sequence(part, slot), of_sequence(whole, static_cast<int>(some[slot]))) << "sequence " << some[slot];
  }
  EXPECT_NE(of_sequence(part, 0), of_sequence(other, 0)) << "another key must draw other masks";
  // A shard of the whole batch holds exactly the targets of its sequences.
  Batch shard;
  shard_of_batch(whole, 4, 8, shard);
  EXPECT_EQ(shard.sequence_ids, (std::vector<int64_t>{4, 5, 6, 7}));
  for (int slot = 0; slot < 4; ++slot) EXPECT_EQ(of_sequence(shard, slot), of_sequence(whole, 4 + slot));
}

TEST(Dataset, BalancedSamplingIsSeededAndCapsOnlyWhenAllowed) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 30; ++i) labels.push_back(i % 3);
  labels.push_back(0);  // label 0: 11 examples, others 10
  const std::vector<std::string> names{"a", "b", "c"};
  const Sample s1 = sample_per_label(labels, names, 5, 42, false);
  const Sample s2 = sample_per_label(labels, names, 5, 42, false);
  const Sample s3 = sample_per_label(labels, names, 5, 43, false);
  EXPECT_EQ(s1.indices, s2.indices);
  EXPECT_NE(s1.indices, s3.indices);
  std::vector<int> count(3);
  for (int64_t i : s1.indices) ++count[labels[i]];
  EXPECT_EQ(count, (std::vector<int>{5, 5, 5}));
  EXPECT_EQ(std::set<int64_t>(s1.indices.begin(), s1.indices.end()).size(), 15u);
  try {
    sample_per_label(labels, names, 11, 1, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label \"b\" has 10 examples left for sampling, 11 asked"), std::string::npos)
        << e.what();
  }
  const Sample capped = sample_per_label(labels, names, 11, 1, true);
  EXPECT_EQ(capped.indices.size(), 31u);
  EXPECT_EQ(capped.capped, (std::vector<std::string>{"b: had 10 of 11 asked", "c: had 10 of 11 asked"}));
}

TEST(Dataset, SplitIsDisjointAndBalanced) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 700 * 4; ++i) labels.push_back(i % 4);
  const Split s = split_per_label(labels, {"a", "b", "c", "d"}, 630, 70, 9, false);
  EXPECT_EQ(s.train.indices.size(), 2520u);
  EXPECT_EQ(s.test.indices.size(), 280u);
  std::set<int64_t> train(s.train.indices.begin(), s.train.indices.end());
  for (int64_t i : s.test.indices) EXPECT_FALSE(train.count(i)) << "example in both splits";
}

TEST(Dataset, ShuffledOrderIsAPermutation) {
  Rng rng(5);
  const auto a = shuffled_order(1000, rng);
  const auto b = shuffled_order(1000, rng);
  EXPECT_NE(a, b);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 1000u);
}

}  // namespace
}  // namespace tlm
