#include "tlm/inference.h"

#include <algorithm>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/evaluate.h"
#include "tlm/model_io.h"
#include "tlm/run_data.h"

namespace tlm {

namespace {

bool same_tokenizer(const TokenizerOptions& a, const TokenizerOptions& b) {
  return same_case_handling(a, b) && a.max_len == b.max_len && a.added_tokens == b.added_tokens &&
         a.max_chars_per_word == b.max_chars_per_word;
}

}  // namespace

Committee::Committee(const std::vector<std::string>& dirs, const InferenceFlags& flags)
    : dirs_(dirs), allow_nonfinite_(flags.allow_nonfinite), device_(flags.device), precision_(flags.precision) {
  TLM_CHECK(!dirs.empty(), "no model given");
  make_backend(device_, precision_);  // a device this build lacks is refused before anything runs
  for (const auto& d : dirs) {
    const BertConfig cfg = load_config(d);
    if (cfg.head != Head::kClassification) throw Error(d + ": not a classifier (fine-tune it first)");
    RunTokenizer rt = load_run_tokenizer(d);
    check_tokenizer_flags(d, rt.options, std::nullopt, flags.max_len);
    if (!tokenizer_) {
      labels_ = cfg.labels;
      tokenizer_ = std::make_unique<Tokenizer>(std::move(rt.vocab), rt.options);
      continue;
    }
    if (cfg.labels != labels_) {
      throw Error(fmt::format("committee members {} and {} have different label sets", dirs[0], d));
    }
    if (rt.vocab.hash() != tokenizer_->vocab().hash()) {
      throw Error(fmt::format("committee members {} and {} have different vocabularies", dirs[0], d));
    }
    if (!same_tokenizer(rt.options, tokenizer_->options())) {
      throw Error(
          fmt::format("committee members {} and {} have different tokenizer settings (case, sequence "
                      "length or added tokens)",
                      dirs[0], d));
    }
  }
}

SequenceSet Committee::labeled_set(const std::string& data, Format format, const std::string& classes,
                                   int64_t per_label, uint64_t seed, bool cap) const {
  if (format == Format::kFewRel) {
    const auto& added = tokenizer_->options().added_tokens;
    for (const auto& m : fewrel_markers()) {
      TLM_CHECK(std::find(added.begin(), added.end(), m) != added.end(),
                "{} was not trained on FewRel data: its tokenizer lacks the entity marker {}", dirs_[0], m);
    }
  }
  LabeledData labeled = read_labeled(data, ReaderOptions{.format = format, .classes_path = classes});
  std::vector<int32_t> to_model(labeled.label_names.size());
  for (size_t i = 0; i < labeled.label_names.size(); ++i) {
    const auto it = std::find(labels_.begin(), labels_.end(), labeled.label_names[i]);
    if (it == labels_.end()) {
      throw Error(fmt::format("{}: label \"{}\" is not one of the model's labels", data, labeled.label_names[i]));
    }
    to_model[i] = static_cast<int32_t>(it - labels_.begin());
  }
  for (auto& ex : labeled.examples) ex.label = to_model[ex.label];
  SequenceSet set = tokenize_examples(*tokenizer_, labeled.examples, labels_, max_len());
  set = draw_test_sample(set, per_label, seed, cap, nullptr);
  TLM_CHECK(set.size() > 0, "{}: no examples", data);
  return set;
}

SequenceSet Committee::text_set(const std::vector<std::string>& texts) const {
  std::vector<Example> examples;
  examples.reserve(texts.size());
  for (const auto& t : texts) examples.push_back({t, 0, 0});
  return tokenize_examples(*tokenizer_, examples, labels_, max_len());
}

std::unique_ptr<BertModel> Committee::load_member(size_t i, const SequenceSet& set, int batch) const {
  return load_member(i, limits_for_set(set, batch, false, 0));
}

std::unique_ptr<BertModel> Committee::load_member(size_t i, const ModelLimits& limits) const {
  auto model = std::make_unique<BertModel>(load_config(dirs_.at(i)), limits, make_backend(device_, precision_));
  load_model_weights(*model, dirs_[i], {LoadMode::kExact, allow_nonfinite_});
  model->freeze_weights();  // inference only: bf16 weights are converted once
  return model;
}

std::vector<std::vector<float>> Committee::member_probabilities(const SequenceSet& set, int batch) const {
  std::vector<std::vector<float>> probs;
  for (size_t i = 0; i < dirs_.size(); ++i) probs.push_back(predict_probs(*load_member(i, set, batch), set, batch));
  return probs;
}

}  // namespace tlm
