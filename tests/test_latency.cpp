// Inference latency of a classifier and a committee: validated before timing, fields complete,
// sequential and concurrent committees equal.
#include <gtest/gtest.h>

#include "test_helpers.h"
#include "tlm/check.h"
#include "tlm/dataset.h"
#include "tlm/latency.h"

namespace tlm {
namespace {

SequenceSet random_set(int n, uint64_t seed) {
  Rng rng(seed);
  SequenceSet set;
  set.label_names = {"a", "b", "c"};
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> seq = {101};
    const int len = 3 + static_cast<int>(rng.below(20));
    for (int t = 0; t < len; ++t) seq.push_back(104 + static_cast<int32_t>(rng.below(40)));
    seq.push_back(102);
    set.add(seq, static_cast<int32_t>(rng.below(3)));
  }
  return set;
}

TEST(Latency, CommitteeIsTimedAfterValidationInBothModes) {
  const SequenceSet set = random_set(30, 3);
  const BertConfig cfg = testing::small_config(Head::kClassification);
  std::vector<std::unique_ptr<BertModel>> owned;
  std::vector<BertModel*> members;
  for (int m = 0; m < 3; ++m) {
    owned.push_back(std::make_unique<BertModel>(
        cfg, ModelLimits{.max_tokens = 8 * 32, .max_seqs = 8, .max_seq_len = 32, .max_targets = 1}));
    owned.back()->init_weights(100 + m);
    members.push_back(owned.back().get());
  }
  LatencyOptions o;
  o.texts = 20;
  o.batch = 8;
  o.threads = 2;
  const auto seq = measure_latency(members, set, o);
  o.mode = CommitteeMode::kConcurrent;
  const auto con = measure_latency(members, set, o);
  for (const auto* r : {&seq, &con}) {
    EXPECT_EQ((*r)["texts"], 20);
    EXPECT_EQ((*r)["members"], 3);
    EXPECT_GT((*r)["single"]["p50_ms"].get<double>(), 0.0);
    EXPECT_GE((*r)["single"]["p90_ms"].get<double>(), (*r)["single"]["p50_ms"].get<double>());
    EXPECT_GT((*r)["batched"]["texts_per_s"].get<double>(), 0.0);
    EXPECT_LT((*r)["max_single_vs_batched_diff"].get<double>(), 1e-4);
    EXPECT_EQ((*r)["params"], 3 * members[0]->num_params());
  }
  EXPECT_EQ(seq["mode"], "sequential");
  EXPECT_EQ(con["mode"], "concurrent");
  // The same work in both modes.
  EXPECT_DOUBLE_EQ(seq["flops_per_prediction"].get<double>(), con["flops_per_prediction"].get<double>());
  // Three members cost three times one member's FLOPs.
  const auto one = measure_latency({members[0]}, set, o);
  EXPECT_NEAR(seq["flops_per_prediction"].get<double>(), 3 * one["flops_per_prediction"].get<double>(), 1e-6);
}

TEST(Latency, MembersWithDifferentLabelCountsAreRejected) {
  const SequenceSet set = random_set(5, 4);
  BertConfig a = testing::small_config(Head::kClassification), b = a;
  b.labels = {"x", "y"};
  const ModelLimits lim{.max_tokens = 8 * 32, .max_seqs = 8, .max_seq_len = 32, .max_targets = 1};
  BertModel ma(a, lim), mb(b, lim);
  EXPECT_THROW(measure_latency({&ma, &mb}, set, LatencyOptions{}), Error);
}

}  // namespace
}  // namespace tlm
