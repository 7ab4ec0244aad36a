// Soft committees: the mean of the members' softmax outputs; also hard majority vote and the
// committee's accuracy as a function of its size K.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace tlm {

// member_probs[m]: (n, labels) probabilities of member m, flat. Returns their (n, labels) mean.
std::vector<float> soft_committee(const std::vector<std::vector<float>>& member_probs);

// Hard majority vote of the members' argmax; ties go to the tied label with the highest mean
// probability. Returns (n) labels.
std::vector<int32_t> majority_vote(const std::vector<std::vector<float>>& member_probs, int num_labels);

// Accuracy of the soft committee of the first K members (K = 1..M) and the mean (and std) over
// up to `subsets` random K-subsets drawn with `seed` (all subsets when there are fewer).
nlohmann::json accuracy_by_size(const std::vector<std::vector<float>>& member_probs, const std::vector<int32_t>& labels,
                                int num_labels, int subsets, uint64_t seed);

}  // namespace tlm
