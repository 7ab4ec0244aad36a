#include "tlm/evaluate.h"

#include <algorithm>
#include <cmath>

#include "tlm/check.h"

namespace tlm {

using nlohmann::json;

std::vector<int32_t> argmax_rows(const std::vector<float>& probs, int num_labels) {
  TLM_CHECK(num_labels > 0 && probs.size() % static_cast<size_t>(num_labels) == 0,
            "{} probabilities do not make rows of {} labels", probs.size(), num_labels);
  std::vector<int32_t> out(probs.size() / num_labels);
  for (size_t i = 0; i < out.size(); ++i) {
    const float* row = probs.data() + i * num_labels;
    out[i] = static_cast<int32_t>(std::max_element(row, row + num_labels) - row);
  }
  return out;
}

double accuracy(const std::vector<int32_t>& predicted, const std::vector<int32_t>& labels) {
  TLM_CHECK(predicted.size() == labels.size(), "{} predictions for {} labels", predicted.size(), labels.size());
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
  return labels.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(labels.size());
}

double accuracy_of(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels) {
  return accuracy(argmax_rows(probs, num_labels), labels);
}

json EvalMetrics::to_json(const std::vector<std::string>& labels) const {
  return {{"accuracy", accuracy}, {"macro_f1", macro_f1}, {"loss", loss}, {"labels", labels}, {"confusion", confusion}};
}

EvalMetrics evaluate_probs(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels) {
  EvalMetrics m;
  m.confusion.assign(num_labels, std::vector<int64_t>(num_labels, 0));
  const int64_t n = static_cast<int64_t>(labels.size());
  TLM_CHECK(static_cast<int64_t>(probs.size()) == n * num_labels, "probabilities do not match the labels");
  const std::vector<int32_t> predicted = argmax_rows(probs, num_labels);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    ++m.confusion[labels[i]][predicted[i]];
    loss -= std::log(std::max(1e-30, static_cast<double>(probs[i * num_labels + labels[i]])));
  }
  m.accuracy = accuracy(predicted, labels);
  m.loss = n ? loss / n : 0;
  double f1_sum = 0;
  for (int c = 0; c < num_labels; ++c) {
    int64_t tp = m.confusion[c][c], fp = 0, fn = 0;
    for (int k = 0; k < num_labels; ++k) {
      if (k == c) continue;
      fp += m.confusion[k][c];
      fn += m.confusion[c][k];
    }
    f1_sum += tp == 0 ? 0.0 : 2.0 * tp / (2.0 * tp + fp + fn);
  }
  m.macro_f1 = num_labels ? f1_sum / num_labels : 0;
  return m;
}

std::vector<float> predict_probs(BertModel& model, const SequenceSet& set, int batch) {
  const int labels = model.config().num_labels();
  std::vector<float> probs(static_cast<size_t>(set.size()) * labels);
  Batch b;
  std::vector<int64_t> which;
  for (int64_t start = 0; start < set.size(); start += batch) {
    which.clear();
    for (int64_t i = start; i < std::min(set.size(), start + batch); ++i) which.push_back(i);
    make_batch(set, which, b);
    model.probabilities(b, probs.data() + start * labels);
  }
  return probs;
}

MlmValidation validate_mlm(BertModel& model, const SequenceSet& valid, const SequenceSet& train, const Vocab& vocab,
                           const MaskingOptions& masking, int batch, uint64_t seed) {
  // Unigram frequencies of the training tokens, add-one smoothed over the vocabulary.
  std::vector<double> freq(vocab.size(), 1.0);
  double total = vocab.size();
  for (int32_t id : train.ids) {
    if (!vocab.is_special(id)) {
      freq[id] += 1;
      total += 1;
    }
  }
  MlmValidation v;
  double loss = 0, unigram = 0;
  Batch b;
  std::vector<int64_t> which;
  for (int64_t start = 0; start < valid.size(); start += batch) {
    which.clear();
    for (int64_t i = start; i < std::min(valid.size(), start + batch); ++i) which.push_back(i);
    make_mlm_batch(valid, which, vocab, masking, seed, b);
    loss += model.forward(b, false, 0).loss_sum;
    for (int32_t label : b.mlm_labels) unigram -= std::log(freq[label] / total);
    v.targets += static_cast<int64_t>(b.mlm_labels.size());
  }
  v.loss = v.targets ? loss / v.targets : 0;
  v.unigram_loss = v.targets ? unigram / v.targets : 0;
  return v;
}

ModelLimits limits_for_set(const SequenceSet& set, int batch, bool mlm, double mask_prob) {
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < set.size(); ++i) lengths.push_back(set.offsets[i + 1] - set.offsets[i]);
  std::sort(lengths.rbegin(), lengths.rend());
  const int seqs = static_cast<int>(std::min<int64_t>(batch, std::max<int64_t>(1, set.size())));
  int64_t tokens = 0;
  for (int i = 0; i < seqs && i < static_cast<int>(lengths.size()); ++i) tokens += lengths[i];
  ModelLimits lim;
  lim.max_tokens = static_cast<int>(std::max<int64_t>(tokens, 1));
  lim.max_seqs = seqs;
  lim.max_seq_len = static_cast<int>(lengths.empty() ? 1 : lengths[0]);
  const double mean = mask_prob * tokens, sd = std::sqrt(tokens * mask_prob * (1 - mask_prob));
  lim.max_targets = mlm ? static_cast<int>(std::min<double>(tokens, std::ceil(mean + 6 * sd + 8))) : 1;
  return lim;
}

ModelLimits merge_limits(ModelLimits a, const ModelLimits& b) {
  a.max_tokens = std::max(a.max_tokens, b.max_tokens);
  a.max_seqs = std::max(a.max_seqs, b.max_seqs);
  a.max_seq_len = std::max(a.max_seq_len, b.max_seq_len);
  a.max_targets = std::max(a.max_targets, b.max_targets);
  return a;
}

}  // namespace tlm
