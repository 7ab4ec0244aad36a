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

}  // namespace

SampleSeeds sample_seeds(const json& c) {
  SampleSeeds s;
  s.sample =
      c.at("sample_seed").get<uint64_t>() > 0 ? c.at("sample_seed").get<uint64_t>() : c.at("seed").get<uint64_t>();
  s.test = c.at("test_seed").get<uint64_t>() > 0 ? c.at("test_seed").get<uint64_t>() : s.sample + 1;
  return s;
}

LabeledSampleOptions labeled_sample_options(const json& c) {
  LabeledSampleOptions o;
  o.per_label_train = c.at("per_label_train");
  o.per_label_test = c.at("per_label_test");
  o.per_label_valid = c.at("valid_per_label");
  o.cap = c.at("cap_per_label");
  o.seeds = sample_seeds(c);
  return o;
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

LabeledDraw draw_labeled_indices(const std::vector<int32_t>& train_labels, const std::vector<int32_t>* test_labels,
                                 const std::vector<std::string>& label_names, const LabeledSampleOptions& o) {
  LabeledDraw out;
  const int64_t n = static_cast<int64_t>(train_labels.size());
  std::vector<int64_t> pool(n);  // what the training sample is drawn from
  for (int64_t i = 0; i < n; ++i) pool[i] = i;
  if (!test_labels) {
    // One file: the test sample is drawn first, with the test seed alone (the same for every
    // training seed and arm), and the training sample from the rest.
    TLM_CHECK(o.per_label_test > 0, "without a test file, say how many examples per label to hold out as test");
    const Sample test = draw_test_indices(train_labels, label_names, o.per_label_test, o.seeds.test, o.cap);
    out.test = test.indices;
    out.capped = test.capped;
    std::vector<char> in_test(n, 0);
    for (int64_t i : test.indices) in_test[i] = 1;
    pool.clear();
    for (int64_t i = 0; i < n; ++i) {
      if (!in_test[i]) pool.push_back(i);
    }
  }
  if (o.per_label_train > 0) {
    std::vector<int32_t> pool_labels;
    for (int64_t i : pool) pool_labels.push_back(train_labels[i]);
    // "All the rest" (per_label_train 0) has nothing to cap; a per-label count from one file
    // may be capped by what the test draw left.
    const Sample tr = sample_per_label(pool_labels, label_names, o.per_label_train, o.seeds.sample, o.cap);
    std::vector<int64_t> chosen;
    for (int64_t k : tr.indices) chosen.push_back(pool[k]);
    pool = std::move(chosen);
    out.capped.insert(out.capped.end(), tr.capped.begin(), tr.capped.end());
  }
  if (test_labels) {
    const Sample test = draw_test_indices(*test_labels, label_names, o.per_label_test, o.seeds.test, o.cap);
    out.test = test.indices;
    out.capped.insert(out.capped.end(), test.capped.begin(), test.capped.end());
  }
  out.train = std::move(pool);
  if (o.per_label_valid > 0) {
    std::vector<int32_t> labels;
    for (int64_t i : out.train) labels.push_back(train_labels[i]);
    const Split split = split_per_label(labels, label_names, static_cast<int64_t>(labels.size()), o.per_label_valid,
                                        mix_key(o.seeds.sample, kValidSplit), true);
    for (const auto& note : split.test.capped) out.capped.push_back("validation " + note);
    std::vector<int64_t> rest;
    for (int64_t k : split.train.indices) rest.push_back(out.train[k]);
    for (int64_t k : split.test.indices) out.valid.push_back(out.train[k]);
    // The validation split takes what a short label has: never all of it, or that label would
    // be scored without ever being trained on.
    std::vector<int64_t> before(label_names.size(), 0), after(label_names.size(), 0);
    for (int32_t l : labels) ++before[l];
    for (int64_t i : rest) ++after[train_labels[i]];
    for (size_t l = 0; l < label_names.size(); ++l) {
      TLM_CHECK(before[l] == 0 || after[l] > 0,
                "label \"{}\": all {} of its training examples would be held out for validation (valid_per_label "
                "{}); it needs more examples, or a smaller valid_per_label",
                label_names[l], before[l], o.per_label_valid);
    }
    out.train = std::move(rest);
  }
  return out;
}

LabeledSample draw_labeled_sample(const SequenceSet& train_all, const SequenceSet* test_all,
                                  const LabeledSampleOptions& o) {
  if (test_all) {
    TLM_CHECK(test_all->label_names == train_all.label_names, "the training and test data have different label sets");
  }
  const LabeledDraw d =
      draw_labeled_indices(train_all.labels, test_all ? &test_all->labels : nullptr, train_all.label_names, o);
  LabeledSample out;
  out.train = select(train_all, d.train);
  out.valid = select(train_all, d.valid);
  out.test = select(test_all ? *test_all : train_all, d.test);
  out.capped = d.capped;
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
