#include "tlm/committee_runner.h"

#include <omp.h>

#include <algorithm>

#include "tlm/check.h"
#include "tlm/committee.h"

namespace tlm {

CommitteeRunner::CommitteeRunner(std::vector<BertModel*> members, CommitteeMode mode, int threads)
    : members_(std::move(members)), mode_(mode), threads_(threads), probs_(members_.size()) {
  TLM_CHECK(!members_.empty(), "no models to run");
  labels_ = members_[0]->config().num_labels();
  for (const BertModel* m : members_) {
    TLM_CHECK(m->config().num_labels() == labels_, "committee members have different label counts");
  }
}

void CommitteeRunner::predict(const SequenceSet& set, const std::vector<int64_t>& which, std::vector<float>& mean) {
  const int k = static_cast<int>(members_.size());
  make_batch(set, which, batch_);  // one batch, read by every member
  auto run_member = [&](int m) {
    probs_[m].resize(which.size() * labels_);
    members_[m]->probabilities(batch_, probs_[m].data());
  };
  if (mode_ == CommitteeMode::kConcurrent && k > 1) {
    // One member per thread; inside the team each member's kernels and BLAS run single-threaded.
#pragma omp parallel for num_threads(std::min(k, threads_)) schedule(static, 1)
    for (int m = 0; m < k; ++m) run_member(m);
  } else {
    for (int m = 0; m < k; ++m) run_member(m);
  }
  mean = soft_committee(probs_);
}

}  // namespace tlm
