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

SequenceSet draw_test_sample(const SequenceSet& test_all, int64_t per_label, uint64_t test_seed, bool cap,
                             std::vector<std::string>* capped) {
  if (per_label == 0) return test_all;
  const Sample s = sample_per_label(test_all.labels, test_all.label_names, per_label, test_seed, cap);
  if (capped) capped->insert(capped->end(), s.capped.begin(), s.capped.end());
  return select(test_all, s.indices);
}

LabeledSample draw_labeled_sample(const SequenceSet& train_all, const SequenceSet* test_all,
                                  const LabeledSampleOptions& o) {
  LabeledSample out;
  if (!test_all) {
    TLM_CHECK(o.per_label_test > 0, "without a test file, say how many examples per label to hold out as test");
    const Split split = split_per_label(train_all.labels, train_all.label_names,
                                        o.per_label_train > 0 ? o.per_label_train : train_all.size(), o.per_label_test,
                                        o.seeds.sample, o.cap || o.per_label_train == 0);
    out.train = select(train_all, split.train.indices);
    out.test = select(train_all, split.test.indices);
    if (o.per_label_train > 0) out.capped = split.train.capped;  // 0 asks for "all the rest": nothing to report
    out.capped.insert(out.capped.end(), split.test.capped.begin(), split.test.capped.end());
  } else {
    TLM_CHECK(test_all->label_names == train_all.label_names, "the training and test data have different label sets");
    const Sample tr = o.per_label_train > 0 ? sample_per_label(train_all.labels, train_all.label_names,
                                                               o.per_label_train, o.seeds.sample, o.cap)
                                            : Sample{all_of(train_all), {}};
    out.train = select(train_all, tr.indices);
    out.capped = tr.capped;
    out.test = draw_test_sample(*test_all, o.per_label_test, o.seeds.test, o.cap, &out.capped);
  }
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
