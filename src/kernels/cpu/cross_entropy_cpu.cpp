#include <cmath>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

// Row max and log-sum-exp of one row (k values), accumulated in double.
double row_logsumexp(const float* row, int k, float& mx) {
  mx = row[0];
  for (int j = 1; j < k; ++j) mx = std::max(mx, row[j]);
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
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
      float mx;
      const double lse = row_logsumexp(row, k, mx);
      mine += lse - row[label];
      if (drow) {
        const float lse_f = static_cast<float>(lse);
        for (int j = 0; j < k; ++j) drow[j] = scale * std::exp(row[j] - lse_f);
        drow[label] -= scale;
      }
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
    const float lse = static_cast<float>(row_logsumexp(row, k, mx));
    for (int j = 0; j < k; ++j) out[j] = std::exp(row[j] - lse);
  }
}

}  // namespace tlm::kernels
