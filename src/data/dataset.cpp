#include "tlm/dataset.h"

#include <algorithm>

#include "tlm/check.h"

namespace tlm {

void SequenceSet::add(std::span<const int32_t> seq, int32_t label) {
  ids.insert(ids.end(), seq.begin(), seq.end());
  offsets.push_back(static_cast<int64_t>(ids.size()));
  if (label >= 0) labels.push_back(label);
}

void document_sequences(const Tokenizer& tok, const std::string& text, int max_len, SequenceMode mode,
                        SequenceSet& out) {
  TLM_CHECK(max_len >= 3, "max_len {} is too short for [CLS] x [SEP]", max_len);
  std::vector<int32_t> pieces;
  tok.encode_pieces(text, pieces);
  if (pieces.empty()) return;
  const size_t body = static_cast<size_t>(max_len - 2);
  std::vector<int32_t> seq;
  for (size_t start = 0; start < pieces.size(); start += body) {
    seq.assign(1, tok.vocab().cls_id());
    const size_t end = std::min(pieces.size(), start + body);
    seq.insert(seq.end(), pieces.begin() + static_cast<long>(start), pieces.begin() + static_cast<long>(end));
    seq.push_back(tok.vocab().sep_id());
    out.add(seq);
    if (mode == SequenceMode::kFirst) break;
  }
}

SequenceSet tokenize_examples(const Tokenizer& tok, const std::vector<Example>& examples,
                              const std::vector<std::string>& label_names, int max_len) {
  TLM_CHECK(max_len >= 3, "max_len {} is too short for [CLS] x [SEP]", max_len);
  SequenceSet set;
  set.label_names = label_names;
  std::vector<int32_t> pieces;
  for (const Example& ex : examples) {
    pieces.assign(1, tok.vocab().cls_id());
    tok.encode_pieces(ex.text, pieces);
    if (static_cast<int>(pieces.size()) > max_len - 1) pieces.resize(max_len - 1);
    pieces.push_back(tok.vocab().sep_id());
    set.add(pieces, ex.label);
  }
  return set;
}

std::vector<int64_t> shuffled_order(int64_t n, Rng& rng) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  return order;
}

namespace {

// Indices of every label, each list shuffled with the seed.
std::vector<std::vector<int64_t>> shuffled_by_label(const std::vector<int32_t>& labels, size_t num_labels,
                                                    uint64_t seed) {
  std::vector<std::vector<int64_t>> by(num_labels);
  for (size_t i = 0; i < labels.size(); ++i) {
    TLM_CHECK(labels[i] >= 0 && static_cast<size_t>(labels[i]) < num_labels, "label {} out of range", labels[i]);
    by[labels[i]].push_back(static_cast<int64_t>(i));
  }
  Rng rng(seed);
  for (auto& list : by) {
    const auto order = shuffled_order(static_cast<int64_t>(list.size()), rng);
    std::vector<int64_t> shuffled(list.size());
    for (size_t i = 0; i < list.size(); ++i) shuffled[i] = list[order[i]];
    list.swap(shuffled);
  }
  return by;
}

// Takes `want` from `list` starting at `from` into sample, capping or failing on shortage.
void take(const std::vector<int64_t>& list, size_t from, int64_t want, const std::string& name, bool cap,
          const char* what, Sample& sample) {
  const int64_t have = std::max<int64_t>(0, static_cast<int64_t>(list.size()) - static_cast<int64_t>(from));
  if (have < want) {
    if (!cap) {
      throw Error(
          fmt::format("label \"{}\" has {} examples left for {}, {} asked (use a smaller per-label count, "
                      "or allow capping)",
                      name, have, what, want));
    }
    sample.capped.push_back(fmt::format("{}: had {} of {} asked", name, have, want));
  }
  const int64_t n = std::min(have, want);
  sample.indices.insert(sample.indices.end(), list.begin() + static_cast<long>(from),
                        list.begin() + static_cast<long>(from + n));
}

}  // namespace

Sample sample_per_label(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                        int64_t per_label, uint64_t seed, bool cap) {
  Sample s;
  const auto by = shuffled_by_label(labels, label_names.size(), seed);
  for (size_t l = 0; l < by.size(); ++l) take(by[l], 0, per_label, label_names[l], cap, "sampling", s);
  return s;
}

Split split_per_label(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                      int64_t per_label_train, int64_t per_label_test, uint64_t seed, bool cap) {
  Split split;
  const auto by = shuffled_by_label(labels, label_names.size(), seed);
  for (size_t l = 0; l < by.size(); ++l) {
    // Test examples first, so a capped label still keeps its full test share when it can.
    take(by[l], 0, per_label_test, label_names[l], cap, "the test split", split.test);
    const size_t used = std::min(by[l].size(), static_cast<size_t>(per_label_test));
    take(by[l], used, per_label_train, label_names[l], cap, "the train split", split.train);
  }
  return split;
}

void make_batch(const SequenceSet& set, std::span<const int64_t> which, Batch& batch) {
  batch.ids.clear();
  batch.type_ids.clear();
  batch.offsets.assign(1, 0);
  batch.sequence_ids.assign(which.begin(), which.end());
  batch.mlm_positions.clear();
  batch.mlm_labels.clear();
  batch.labels.clear();
  for (int64_t i : which) {
    const auto seq = set.sequence(i);
    batch.ids.insert(batch.ids.end(), seq.begin(), seq.end());
    batch.offsets.push_back(static_cast<int32_t>(batch.ids.size()));
  }
}

void make_mlm_batch(const SequenceSet& set, std::span<const int64_t> which, const Vocab& vocab, const MaskingOptions& o,
                    uint64_t key, Batch& batch) {
  make_batch(set, which, batch);
  // Three counter draws per token: selected?, which replacement, the random id.
  auto draws = [&](int s, int i) { return row_stream(key, token_key(batch.sequence_ids[s], i - batch.offsets[s])); };
  int candidates = 0;
  for (int s = 0; s < batch.num_seqs(); ++s) {
    for (int i = batch.offsets[s]; i < batch.offsets[s + 1]; ++i) {
      if (vocab.is_special(batch.ids[i])) continue;
      ++candidates;
      if (counter_uniform(draws(s, i), 0) < o.mask_prob) batch.mlm_positions.push_back(i);
    }
  }
  if (batch.mlm_positions.empty() && candidates > 0) {  // the model needs at least one target
    int pick =
        static_cast<int>(splitmix64(key ^ static_cast<uint64_t>(candidates)) % static_cast<uint64_t>(candidates));
    for (int i = 0; i < batch.num_tokens(); ++i) {
      if (!vocab.is_special(batch.ids[i]) && pick-- == 0) {
        batch.mlm_positions.push_back(i);
        break;
      }
    }
  }
  TLM_CHECK(!batch.mlm_positions.empty(), "an MLM batch of {} sequences has no maskable token", which.size());
  if (o.max_targets > 0 && static_cast<int>(batch.mlm_positions.size()) > o.max_targets) {
    batch.mlm_positions.resize(o.max_targets);
  }
  int s = 0;
  for (int pos : batch.mlm_positions) {
    while (pos >= batch.offsets[s + 1]) ++s;
    batch.mlm_labels.push_back(batch.ids[pos]);
    const uint64_t stream = draws(s, pos);
    const float r = counter_uniform(stream, 1);
    if (r < o.mask_token) {
      batch.ids[pos] = vocab.mask_id();
    } else if (r < o.mask_token + o.random_token) {
      // Multiply-high maps 64 random bits onto [0, vocab) (bias below 2^-40 for any vocabulary).
      __extension__ typedef unsigned __int128 u128;
      const uint64_t bits = splitmix64(stream ^ 0xA5A5A5A5ull);
      batch.ids[pos] = static_cast<int32_t>((static_cast<u128>(bits) * static_cast<uint64_t>(vocab.size())) >> 64);
    }
  }
}

void make_classification_batch(const SequenceSet& set, std::span<const int64_t> which, Batch& batch) {
  TLM_CHECK(set.labels.size() == static_cast<size_t>(set.size()), "the sequences carry no labels");
  make_batch(set, which, batch);
  for (int64_t i : which) batch.labels.push_back(set.labels[i]);
}

void shard_of_batch(const Batch& whole, int first, int end, Batch& shard) {
  TLM_CHECK(0 <= first && first <= end && end <= whole.num_seqs(), "shard [{}, {}) of a batch of {} sequences", first,
            end, whole.num_seqs());
  const int t0 = whole.offsets[first], t1 = whole.offsets[end];
  shard.ids.assign(whole.ids.begin() + t0, whole.ids.begin() + t1);
  shard.type_ids.clear();
  if (!whole.type_ids.empty()) shard.type_ids.assign(whole.type_ids.begin() + t0, whole.type_ids.begin() + t1);
  shard.offsets.clear();
  for (int s = first; s <= end; ++s) shard.offsets.push_back(whole.offsets[s] - t0);
  shard.sequence_ids.clear();
  for (int s = first; s < end; ++s) {
    shard.sequence_ids.push_back(whole.sequence_ids.empty() ? s : whole.sequence_ids[s]);
  }
  shard.mlm_positions.clear();
  shard.mlm_labels.clear();
  for (size_t i = 0; i < whole.mlm_positions.size(); ++i) {
    if (whole.mlm_positions[i] >= t0 && whole.mlm_positions[i] < t1) {
      shard.mlm_positions.push_back(whole.mlm_positions[i] - t0);
      shard.mlm_labels.push_back(whole.mlm_labels[i]);
    }
  }
  shard.labels.clear();
  if (!whole.labels.empty()) shard.labels.assign(whole.labels.begin() + first, whole.labels.begin() + end);
}

}  // namespace tlm
