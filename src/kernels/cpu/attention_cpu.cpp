#include <cblas.h>

#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm::kernels {

namespace {

int64_t q_len(const AttentionShape& a, int s) { return a.q_offsets[s + 1] - a.q_offsets[s]; }
int64_t kv_len(const AttentionShape& a, int s) { return a.kv_offsets[s + 1] - a.kv_offsets[s]; }

// Where block (s, h) starts in the probs buffer.
int64_t block_offset(const AttentionShape& a, int s, int h) {
  int64_t off = 0;
  for (int t = 0; t < s; ++t) off += a.heads * q_len(a, t) * kv_len(a, t);
  return off + h * q_len(a, s) * kv_len(a, s);
}

int max_kv_len(const AttentionShape& a) {
  int64_t m = 0;
  for (int s = 0; s < a.num_seqs; ++s) m = std::max(m, kv_len(a, s));
  return static_cast<int>(m);
}

bool kept(const AttentionShape& a, int64_t index) {
  return counter_uniform(a.dropout_key, static_cast<uint64_t>(index)) >= a.dropout_p;
}

}  // namespace

int64_t attention_probs_size(const AttentionShape& a) { return block_offset(a, a.num_seqs, 0); }

int64_t attention_scratch_size(int max_len, int threads) {
  return 2 * static_cast<int64_t>(max_len) * max_len * threads;
}

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx, float* scratch,
                       const AttentionShape& a) {
  const int d = a.head_dim, c = a.heads * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t per_thread = 2 * static_cast<int64_t>(max_kv_len(a)) * max_kv_len(a);
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < a.num_seqs * a.heads; ++task) {
    const int s = task / a.heads, h = task % a.heads;
    const int nq = static_cast<int>(q_len(a, s)), nk = static_cast<int>(kv_len(a, s));
    if (nq == 0) continue;
    const float* qs = q + static_cast<int64_t>(a.q_offsets[s]) * a.q_stride + h * d;
    const float* ks = k + static_cast<int64_t>(a.kv_offsets[s]) * a.kv_stride + h * d;
    const float* vs = v + static_cast<int64_t>(a.kv_offsets[s]) * a.kv_stride + h * d;
    const int64_t base = block_offset(a, s, h);
    float* p = probs + base;
    // scores = q k^T / sqrt(d)    (nq, nk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, d, scale, qs, a.q_stride, ks, a.kv_stride, 0.0f, p,
                nk);
    for (int i = 0; i < nq; ++i) {
      float* row = p + static_cast<int64_t>(i) * nk;
      float mx;
      const double sum = row_exp_sum(row, nk, &mx);
      row_exp_scaled(row, row, nk, mx, static_cast<float>(1.0 / sum));
    }
    const float* use = p;
    if (a.dropout_p > 0.0f) {
      float* pd = scratch + omp_get_thread_num() * per_thread;
      for (int64_t i = 0; i < int64_t{nq} * nk; ++i) pd[i] = kept(a, base + i) ? p[i] * keep_scale : 0.0f;
      use = pd;
    }
    // ctx_h = P v    (nq, d) into columns [h*d, (h+1)*d) of ctx
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, d, nk, 1.0f, use, nk, vs, a.kv_stride, 0.0f,
                ctx + static_cast<int64_t>(a.q_offsets[s]) * c + h * d, c);
  }
}

void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, float* scratch, const AttentionShape& a) {
  const int d = a.head_dim, c = a.heads * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t per_thread = 2 * static_cast<int64_t>(max_kv_len(a)) * max_kv_len(a);
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < a.num_seqs * a.heads; ++task) {
    const int s = task / a.heads, h = task % a.heads;
    const int nq = static_cast<int>(q_len(a, s)), nk = static_cast<int>(kv_len(a, s));
    const int64_t qoff = static_cast<int64_t>(a.q_offsets[s]) * a.q_stride + h * d;
    const int64_t kvoff = static_cast<int64_t>(a.kv_offsets[s]) * a.kv_stride + h * d;
    if (nq == 0) {  // no query here: keys and values of this sequence get no gradient
      for (int j = 0; j < nk; ++j) {
        std::fill(dk + kvoff + int64_t{j} * a.kv_stride, dk + kvoff + int64_t{j} * a.kv_stride + d, 0.0f);
        std::fill(dv + kvoff + int64_t{j} * a.kv_stride, dv + kvoff + int64_t{j} * a.kv_stride + d, 0.0f);
      }
      continue;
    }
    const float* dout = dctx + static_cast<int64_t>(a.q_offsets[s]) * c + h * d;
    const int64_t base = block_offset(a, s, h);
    const float* p = probs + base;
    const int64_t count = int64_t{nq} * nk;
    float* dp = scratch + omp_get_thread_num() * per_thread;
    float* pd = dp + count;
    const float* use = p;
    if (a.dropout_p > 0.0f) {
      for (int64_t i = 0; i < count; ++i) pd[i] = kept(a, base + i) ? p[i] * keep_scale : 0.0f;
      use = pd;
    }
    // dv = Pd^T dout    (nk, d)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, d, nq, 1.0f, use, nk, dout, c, 0.0f, dv + kvoff,
                a.kv_stride);
    // dPd = dout v^T    (nq, nk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, d, 1.0f, dout, c, v + kvoff, a.kv_stride, 0.0f, dp,
                nk);
    // through dropout, then softmax: dS = P * (dP - rowsum(P * dP))
    for (int i = 0; i < nq; ++i) {
      float* dpi = dp + static_cast<int64_t>(i) * nk;
      const float* pi = p + static_cast<int64_t>(i) * nk;
      if (a.dropout_p > 0.0f) {
        const int64_t row_base = base + static_cast<int64_t>(i) * nk;
        for (int j = 0; j < nk; ++j) dpi[j] = kept(a, row_base + j) ? dpi[j] * keep_scale : 0.0f;
      }
      softmax_backward_row(pi, dpi, nk);
    }
    // dq = dS k / sqrt(d)  (nq, d);  dk = dS^T q / sqrt(d)  (nk, d)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, d, nk, scale, dp, nk, k + kvoff, a.kv_stride, 0.0f,
                dq + qoff, a.q_stride);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, d, nq, scale, dp, nk, q + qoff, a.q_stride, 0.0f,
                dk + kvoff, a.kv_stride);
  }
}

}  // namespace tlm::kernels
