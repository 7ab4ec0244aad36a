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

// The cross-entropy of one row (k logits, label >= 0), its exponentials exp(row - max) written to
// out (which may be row: the label's logit is read first) and their sum to *sum.
double row_loss_keeping_exps(const float* row, float* out, int label, int k, double* sum) {
  const float logit = row[label];
  float mx;
  *sum = row_exp_sum_to(row, out, k, &mx);
  return mx + std::log(*sum) - logit;
}

// The sum of row_loss(i) over rows i < m: per-thread partial sums over a static schedule, added
// in thread order, so deterministic for a given thread count.
template <typename RowLoss>
double sum_row_losses(int m, RowLoss row_loss) {
  double partial[kMaxThreads] = {};
#pragma omp parallel
  {
    double mine = 0;
#pragma omp for schedule(static)
    for (int i = 0; i < m; ++i) mine += row_loss(i);
    partial[omp_get_thread_num()] = mine;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m, int k) {
  return sum_row_losses(m, [&](int i) -> double {
    const float* row = logits + static_cast<int64_t>(i) * k;
    float* drow = dlogits ? dlogits + static_cast<int64_t>(i) * k : nullptr;
    const int label = labels[i];
    if (label < 0) {  // ignore_index (-100 in HF): no loss, no gradient
      if (drow) std::fill(drow, drow + k, 0.0f);
      return 0.0;
    }
    if (!drow) return row_logsumexp(row, k) - row[label];
    // d loss / d logits = scale * (softmax - onehot): the exponentials of the sum, rescaled
    double sum;
    const double loss = row_loss_keeping_exps(row, drow, label, k, &sum);
    scale_row(drow, k, static_cast<float>(scale / sum));
    drow[label] -= scale;
    return loss;
  });
}

double softmax_cross_entropy_forward(const float* logits, const int32_t* labels, float* saved, double* row_sums, int m,
                                     int k) {
  // softmax_cross_entropy's rows with dlogits = saved, stopping before the rescale: the same sums,
  // so the same loss
  return sum_row_losses(m, [&](int i) -> double {
    const int label = labels[i];
    if (label < 0) return 0.0;  // backward zeroes its row
    const int64_t at = static_cast<int64_t>(i) * k;
    return row_loss_keeping_exps(logits + at, saved + at, label, k, &row_sums[i]);
  });
}

namespace {

// Columns [c0, c1) of every row: the rescale of softmax_cross_entropy (scale_row's multiply, then
// the label's subtraction), and db's column sums in row order as linear_backward adds them.
TLM_CLONES void cross_entropy_backward_columns(float* saved, const int32_t* labels, const double* row_sums, float scale,
                                               int m, int k, float* __restrict db, int c0, int c1) {
  for (int i = 0; i < m; ++i) {
    float* __restrict row = saved + static_cast<int64_t>(i) * k;
    const int label = labels[i];
    if (label < 0) {
      for (int c = c0; c < c1; ++c) row[c] = 0.0f;
    } else {
      const float f = static_cast<float>(scale / row_sums[i]);
      for (int c = c0; c < c1; ++c) row[c] = f * row[c];
      if (label >= c0 && label < c1) row[label] -= scale;
    }
    if (db) {
      for (int c = c0; c < c1; ++c) db[c] += row[c];
    }
  }
}

}  // namespace

void softmax_cross_entropy_backward(float* saved, const int32_t* labels, const double* row_sums, float scale, int m,
                                    int k, float* db) {
  // Column blocks: each thread owns columns of every row, so db's sums need no second pass and
  // keep their order for any thread count.
  parallel_column_blocks(
      k, [&](int c0, int c1) { cross_entropy_backward_columns(saved, labels, row_sums, scale, m, k, db, c0, c1); });
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
