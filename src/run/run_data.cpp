#include "tlm/run_data.h"

#include <algorithm>

#include "tlm/check.h"
#include "tlm/rng.h"

namespace tlm {

using nlohmann::json;

namespace {

// Keys of the draws, apart from every other stream of a run's seed.
constexpr uint64_t kValidSplit = 0x7A1;
constexpr uint64_t kPretrainSplit = 0x5A3;

SequenceSet select(const SequenceSet& from, const std::vector<int64_t>& idx) {
  SequenceSet s;
  s.label_names = from.label_names;
  for (int64_t i : idx) s.add(from.sequence(i), from.labels.empty() ? -1 : from.labels[i]);
  return s;
}

std::vector<int64_t> all_of(const SequenceSet& s) {
  std::vector<int64_t> idx(s.size());
  for (int64_t i = 0; i < s.size(); ++i) idx[i] = i;
  return idx;
}

}  // namespace

SampleSeeds sample_seeds(const json& c) {
  SampleSeeds s;
  s.sample =
      c.at("sample_seed").get<uint64_t>() > 0 ? c.at("sample_seed").get<uint64_t>() : c.at("seed").get<uint64_t>();
  s.test = c.at("test_seed").get<uint64_t>() > 0 ? c.at("test_seed").get<uint64_t>() : s.sample + 1;
  return s;
}

Sample draw_test_indices(const std::vector<int32_t>& labels, const std::vector<std::string>& label_names,
                         int64_t per_label, uint64_t test_seed, bool cap) {
  if (per_label == 0) {
    std::vector<int64_t> all(labels.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    return {all, {}};
  }
  return sample_per_label(labels, label_names, per_label, test_seed, cap);
}

SequenceSet draw_test_sample(const SequenceSet& test_all, int64_t per_label, uint64_t test_seed, bool cap,
                             std::vector<std::string>* capped) {
  const Sample s = draw_test_indices(test_all.labels, test_all.label_names, per_label, test_seed, cap);
  if (capped) capped->insert(capped->end(), s.capped.begin(), s.capped.end());
  return select(test_all, s.indices);
}

LabeledSample draw_labeled_sample(const SequenceSet& train_all, const SequenceSet* test_all,
                                  const LabeledSampleOptions& o) {
  LabeledSample out;
  std::vector<int64_t> pool = all_of(train_all);  // what the training sample is drawn from
  if (!test_all) {
    // One file: the test sample is drawn first, with the test seed alone (the same for every
    // training seed and arm), and the training sample from the rest.
    TLM_CHECK(o.per_label_test > 0, "without a test file, say how many examples per label to hold out as test");
    const Sample test =
        draw_test_indices(train_all.labels, train_all.label_names, o.per_label_test, o.seeds.test, o.cap);
    out.test = select(train_all, test.indices);
    out.capped = test.capped;
    std::vector<char> in_test(train_all.size(), 0);
    for (int64_t i : test.indices) in_test[i] = 1;
    pool.clear();
    for (int64_t i = 0; i < train_all.size(); ++i) {
      if (!in_test[i]) pool.push_back(i);
    }
  } else {
    TLM_CHECK(test_all->label_names == train_all.label_names, "the training and test data have different label sets");
  }
  if (o.per_label_train > 0) {
    std::vector<int32_t> pool_labels;
    for (int64_t i : pool) pool_labels.push_back(train_all.labels[i]);
    // "All the rest" (per_label_train 0) has nothing to cap; a per-label count from one file
    // may be capped by what the test draw left.
    const Sample tr = sample_per_label(pool_labels, train_all.label_names, o.per_label_train, o.seeds.sample, o.cap);
    std::vector<int64_t> chosen;
    for (int64_t k : tr.indices) chosen.push_back(pool[k]);
    pool = std::move(chosen);
    out.capped.insert(out.capped.end(), tr.capped.begin(), tr.capped.end());
  }
  out.train = select(train_all, pool);
  if (test_all) out.test = draw_test_sample(*test_all, o.per_label_test, o.seeds.test, o.cap, &out.capped);
  if (o.per_label_valid > 0) {
    const Split split = split_per_label(out.train.labels, out.train.label_names, out.train.size(), o.per_label_valid,
                                        mix_key(o.seeds.sample, kValidSplit), true);
    for (const auto& note : split.test.capped) out.capped.push_back("validation " + note);
    SequenceSet rest = select(out.train, split.train.indices);
    out.valid = select(out.train, split.test.indices);
    out.train = std::move(rest);
  }
  return out;
}

PretrainSplit split_pretraining(const SequenceSet& all, int64_t sequences, int64_t valid_sequences, uint64_t seed) {
  const int64_t n = all.size();
  const int64_t n_valid = valid_sequences < 0 ? std::min<int64_t>(500, n / 20) : valid_sequences;
  TLM_CHECK(n_valid < n, "--valid-sequences {} leaves nothing to pre-train on: the corpus gives {} sequences", n_valid,
            n);
  const int64_t available = n - n_valid;
  const int64_t n_train = sequences == 0 ? available : sequences;
  TLM_CHECK(n_train <= available,
            "--sequences {} asks for more than the {} sequences the corpus gives ({} held out for validation)", n_train,
            available, n_valid);
  Rng rng(mix_key(seed, kPretrainSplit));
  const auto order = shuffled_order(n, rng);
  PretrainSplit out;
  for (int64_t i = 0; i < n_valid; ++i) out.valid.add(all.sequence(order[i]));
  for (int64_t i = n_valid; i < n_valid + n_train; ++i) out.train.add(all.sequence(order[i]));
  return out;
}

TokenizerOptions run_tokenizer_options(bool cased, int max_len, Format format) {
  TokenizerOptions o;
  o.lowercase = !cased;
  o.max_len = max_len;
  if (format == Format::kFewRel) o.added_tokens = fewrel_markers();
  return o;
}

}  // namespace tlm
