#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

// Log-sum-exp of one row (k values), the sum accumulated in double.
double row_logsumexp(const float* row, int k) {
  float mx;
  const double sum = row_exp_sum(row, k, &mx);
  return mx + std::log(sum);
}

}  // namespace

double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m, int k) {
  // Per-thread partial sums over a static schedule, added in thread order: deterministic for a
  // given thread count.
  double partial[kMaxThreads] = {};
#pragma omp parallel
  {
    double mine = 0;
#pragma omp for schedule(static)
    for (int i = 0; i < m; ++i) {
      const float* row = logits + static_cast<int64_t>(i) * k;
      float* drow = dlogits ? dlogits + static_cast<int64_t>(i) * k : nullptr;
      const int label = labels[i];
      if (label < 0) {  // ignore_index (-100 in HF)
        if (drow) std::fill(drow, drow + k, 0.0f);
        continue;
      }
      if (!drow) {
        mine += row_logsumexp(row, k) - row[label];
        continue;
      }
      // d loss / d logits = scale * (softmax - onehot): the exponentials of the sum, rescaled
      // (the label's logit read first: drow may be row)
      const float logit = row[label];
      float mx;
      const double sum = row_exp_sum_to(row, drow, k, &mx);
      mine += mx + std::log(sum) - logit;
      scale_row(drow, k, static_cast<float>(scale / sum));
      drow[label] -= scale;
    }
    partial[omp_get_thread_num()] = mine;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void softmax_rows(const float* logits, float* probs, int m, int k) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    const float* row = logits + static_cast<int64_t>(i) * k;
    float* out = probs + static_cast<int64_t>(i) * k;
    float mx;
    scale_row(out, k, static_cast<float>(1.0 / row_exp_sum_to(row, out, k, &mx)));
  }
}

}  // namespace tlm::kernels
