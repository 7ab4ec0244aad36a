#include <gtest/gtest.h>

#include "tlm/check.h"
#include "tlm/committee.h"
#include "tlm/evaluate.h"

namespace tlm {
namespace {

// Three members, two examples, three labels; probabilities row-major (n, labels).
const std::vector<std::vector<float>> kMembers{
    {0.6f, 0.3f, 0.1f, 0.2f, 0.5f, 0.3f},
    {0.1f, 0.8f, 0.1f, 0.3f, 0.3f, 0.4f},
    {0.5f, 0.4f, 0.1f, 0.1f, 0.2f, 0.7f},
};

TEST(Committee, SoftIsTheMeanOfTheMembers) {
  const auto mean = soft_committee(kMembers);
  ASSERT_EQ(mean.size(), 6u);
  EXPECT_FLOAT_EQ(mean[0], 0.4f);
  EXPECT_FLOAT_EQ(mean[1], 0.5f);
  EXPECT_FLOAT_EQ(mean[5], 1.4f / 3);
  EXPECT_THROW(soft_committee({}), Error);
}

TEST(Committee, MajorityVoteBreaksTiesByMeanProbability) {
  // example 0: votes label 0, 1, 0 -> 0; example 1: votes 1, 2, 2 -> 2
  EXPECT_EQ(majority_vote(kMembers, 3), (std::vector<int32_t>{0, 2}));
  // a 1-1 tie between labels 0 and 1: label 1 has the higher mean probability
  const std::vector<std::vector<float>> tie{{0.55f, 0.45f, 0.0f}, {0.05f, 0.95f, 0.0f}};
  EXPECT_EQ(majority_vote(tie, 3), (std::vector<int32_t>{1}));
}

TEST(Committee, AccuracyBySize) {
  const std::vector<int32_t> labels{1, 2};
  const auto rows = accuracy_by_size(kMembers, labels, 3, 20, 1);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0]["first_k_accuracy"].get<double>(), 0.0);  // member 0 predicts 0 and 1: both wrong
  EXPECT_EQ(rows[0]["random_subsets"].get<int>(), 3);                // all three singletons
  double mean1 = 0;  // the mean over the three single members, recomputed directly
  for (const auto& m : kMembers) mean1 += accuracy_of(m, labels, 3) / 3;
  EXPECT_NEAR(rows[0]["mean_accuracy"].get<double>(), mean1, 1e-12);
  EXPECT_EQ(rows[2]["random_subsets"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(rows[2]["first_k_accuracy"].get<double>(), accuracy_of(soft_committee(kMembers), labels, 3));
}

}  // namespace
}  // namespace tlm
