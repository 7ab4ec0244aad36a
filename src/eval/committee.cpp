#include "tlm/committee.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "tlm/check.h"
#include "tlm/evaluate.h"
#include "tlm/rng.h"

namespace tlm {

std::vector<float> soft_committee(const std::vector<std::vector<float>>& member_probs) {
  TLM_CHECK(!member_probs.empty(), "a committee needs at least one member");
  const size_t size = member_probs[0].size();
  std::vector<double> sum(size, 0.0);
  for (const auto& p : member_probs) {
    TLM_CHECK(p.size() == size, "committee members scored different numbers of examples");
    for (size_t i = 0; i < size; ++i) sum[i] += p[i];
  }
  std::vector<float> mean(size);
  for (size_t i = 0; i < size; ++i) mean[i] = static_cast<float>(sum[i] / member_probs.size());
  return mean;
}

std::vector<int32_t> majority_vote(const std::vector<std::vector<float>>& member_probs, int num_labels) {
  const std::vector<float> mean = soft_committee(member_probs);
  const size_t n = mean.size() / num_labels;
  std::vector<std::vector<int32_t>> member_votes;
  for (const auto& p : member_probs) member_votes.push_back(argmax_rows(p, num_labels));
  std::vector<int32_t> out(n);
  std::vector<int> votes(num_labels);
  for (size_t i = 0; i < n; ++i) {
    std::fill(votes.begin(), votes.end(), 0);
    for (const auto& v : member_votes) ++votes[v[i]];
    int best = 0;
    for (int c = 1; c < num_labels; ++c) {
      if (votes[c] > votes[best] ||
          (votes[c] == votes[best] && mean[i * num_labels + c] > mean[i * num_labels + best])) {
        best = c;
      }
    }
    out[i] = best;
  }
  return out;
}

nlohmann::json accuracy_by_size(const std::vector<std::vector<float>>& member_probs, const std::vector<int32_t>& labels,
                                int num_labels, int subsets, uint64_t seed) {
  const int m = static_cast<int>(member_probs.size());
  nlohmann::json rows = nlohmann::json::array();
  Rng rng(seed);
  for (int k = 1; k <= m; ++k) {
    const std::vector<std::vector<float>> first(member_probs.begin(), member_probs.begin() + k);
    // Random K-subsets (distinct, as index sets), or all of them when there are few.
    std::set<std::vector<int>> drawn;
    double binom = 1;
    for (int i = 0; i < k; ++i) binom = binom * (m - i) / (i + 1);
    const int want = static_cast<int>(std::min<double>(subsets, std::round(binom)));
    while (static_cast<int>(drawn.size()) < want) {
      std::vector<int> idx(m);
      for (int i = 0; i < m; ++i) idx[i] = i;
      for (int i = 0; i < k; ++i) std::swap(idx[i], idx[i + rng.below(static_cast<uint64_t>(m - i))]);
      idx.resize(k);
      std::sort(idx.begin(), idx.end());
      drawn.insert(idx);
    }
    double s = 0, s2 = 0;
    for (const auto& idx : drawn) {
      std::vector<std::vector<float>> sub;
      for (int i : idx) sub.push_back(member_probs[i]);
      const double a = accuracy_of(soft_committee(sub), labels, num_labels);
      s += a;
      s2 += a * a;
    }
    const double n = static_cast<double>(drawn.size()), mean = s / n;
    rows.push_back({{"k", k},
                    {"first_k_accuracy", accuracy_of(soft_committee(first), labels, num_labels)},
                    {"random_subsets", drawn.size()},
                    {"mean_accuracy", mean},
                    {"std_accuracy", n > 1 ? std::sqrt(std::max(0.0, (s2 - n * mean * mean) / (n - 1))) : 0.0}});
  }
  return rows;
}

}  // namespace tlm
