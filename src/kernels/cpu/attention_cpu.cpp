#include <cblas.h>

#include <cmath>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm::kernels {

namespace {

// Where block (s, h) starts in the probs buffer: sum over earlier sequences of heads * len^2.
int64_t block_offset(const AttentionShape& a, int s, int h) {
  int64_t off = 0;
  for (int t = 0; t < s; ++t) {
    const int64_t len = a.offsets[t + 1] - a.offsets[t];
    off += a.heads * len * len;
  }
  const int64_t len = a.offsets[s + 1] - a.offsets[s];
  return off + h * len * len;
}

// Pd = dropout(P) for block starting at global index `base` (len*len values).
void dropped_probs(const float* p, float* pd, int64_t count, int64_t base, const AttentionShape& a) {
  const float scale = 1.0f / (1.0f - a.dropout_p);
  for (int64_t i = 0; i < count; ++i) {
    pd[i] = counter_uniform(a.dropout_key, static_cast<uint64_t>(base + i)) >= a.dropout_p ? p[i] * scale : 0.0f;
  }
}

}  // namespace

int64_t attention_probs_size(const AttentionShape& a) { return block_offset(a, a.num_seqs, 0); }

int64_t attention_scratch_size(int max_len, int threads) {
  return 2 * static_cast<int64_t>(max_len) * max_len * threads;
}

static int max_seq_len(const AttentionShape& a) {
  int max_len = 0;
  for (int s = 0; s < a.num_seqs; ++s) max_len = std::max(max_len, a.offsets[s + 1] - a.offsets[s]);
  return max_len;
}

void attention_forward(const float* qkv, float* probs, float* ctx, float* scratch, const AttentionShape& a) {
  const int d = a.head_dim, c = a.heads * d, c3 = 3 * c;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int tasks = a.num_seqs * a.heads;
  const int max_len = max_seq_len(a);
  const int64_t per_thread = 2 * static_cast<int64_t>(max_len) * max_len;
  const bool drop = a.dropout_p > 0.0f;
  {
#pragma omp parallel for schedule(dynamic)
    for (int task = 0; task < tasks; ++task) {
      const int s = task / a.heads, h = task % a.heads;
      const int row0 = a.offsets[s], len = a.offsets[s + 1] - row0;
      const float* q = qkv + static_cast<int64_t>(row0) * c3 + h * d;
      const float* k = q + c;
      const float* v = q + 2 * c;
      const int64_t base = block_offset(a, s, h);
      float* p = probs + base;
      // scores = q k^T / sqrt(d)    (len, len)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, d, scale, q, c3, k, c3, 0.0f, p, len);
      for (int i = 0; i < len; ++i) {
        float* row = p + static_cast<int64_t>(i) * len;
        float mx = row[0];
        for (int j = 1; j < len; ++j) mx = std::max(mx, row[j]);
        float sum = 0;
        for (int j = 0; j < len; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < len; ++j) row[j] *= inv;
      }
      const float* use = p;
      if (drop) {
        float* pd = scratch + omp_get_thread_num() * per_thread;
        dropped_probs(p, pd, static_cast<int64_t>(len) * len, base, a);
        use = pd;
      }
      // ctx_h = P v    (len, d) written into columns [h*d, (h+1)*d) of ctx (n, c)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, d, len, 1.0f, use, len, v, c3, 0.0f,
                  ctx + static_cast<int64_t>(row0) * c + h * d, c);
    }
  }
}

void attention_backward(const float* dctx, const float* qkv, const float* probs, float* dqkv, float* scratch,
                        const AttentionShape& a) {
  const int d = a.head_dim, c = a.heads * d, c3 = 3 * c;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int tasks = a.num_seqs * a.heads;
  const int max_len = max_seq_len(a);
  const int64_t per_thread = 2 * static_cast<int64_t>(max_len) * max_len;
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < tasks; ++task) {
    const int s = task / a.heads, h = task % a.heads;
    const int row0 = a.offsets[s], len = a.offsets[s + 1] - row0;
    const int64_t off = static_cast<int64_t>(row0) * c3 + h * d;
    const float *q = qkv + off, *k = q + c, *v = q + 2 * c;
    float *dq = dqkv + off, *dk = dq + c, *dv = dq + 2 * c;
    const float* dout = dctx + static_cast<int64_t>(row0) * c + h * d;
    const int64_t base = block_offset(a, s, h);
    const float* p = probs + base;
    const int64_t count = static_cast<int64_t>(len) * len;
    float* dp = scratch + omp_get_thread_num() * per_thread;
    float* pd = dp + count;
    const float* use = p;
    if (a.dropout_p > 0.0f) {
      dropped_probs(p, pd, count, base, a);
      use = pd;
    }
    // dv = Pd^T dout    (len, d)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, len, d, len, 1.0f, use, len, dout, c, 0.0f, dv, c3);
    // dPd = dout v^T    (len, len)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, d, 1.0f, dout, c, v, c3, 0.0f, dp, len);
    // through dropout, then softmax: dS = P * (dP - rowsum(P * dP))
    for (int i = 0; i < len; ++i) {
      float* dpi = dp + static_cast<int64_t>(i) * len;
      const float* pi = p + static_cast<int64_t>(i) * len;
      if (a.dropout_p > 0.0f) {
        const int64_t row_base = base + static_cast<int64_t>(i) * len;
        for (int j = 0; j < len; ++j) {
          const bool keep = counter_uniform(a.dropout_key, static_cast<uint64_t>(row_base + j)) >= a.dropout_p;
          dpi[j] = keep ? dpi[j] * keep_scale : 0.0f;
        }
      }
      float dot = 0;
      for (int j = 0; j < len; ++j) dot += pi[j] * dpi[j];
      for (int j = 0; j < len; ++j) dpi[j] = pi[j] * (dpi[j] - dot);
    }
    // dq = dS k / sqrt(d), dk = dS^T q / sqrt(d)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, d, len, scale, dp, len, k, c3, 0.0f, dq, c3);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, len, d, len, scale, dp, len, q, c3, 0.0f, dk, c3);
  }
}

}  // namespace tlm::kernels
