#include <cblas.h>

#include <cmath>

#include "core/parallel.h"
#include "kernels/cpu/attention_blocks.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

// Sizes shared by the forward and backward passes.
struct Geometry {
  int d, c;            // head dim, hidden size
  float scale;         // 1 / sqrt(head_dim)
  float keep_scale;    // 1 / (1 - dropout_p)
  int64_t per_thread;  // scratch floats per thread
  explicit Geometry(const AttentionShape& a)
      : d(a.head_dim),
        c(a.heads * a.head_dim),
        scale(1.0f / std::sqrt(static_cast<float>(a.head_dim))),
        keep_scale(dropout_keep_scale(a)),
        per_thread(2 * static_cast<int64_t>(max_kv_len(a)) * max_kv_len(a)) {}
};

// One (sequence, head) block of work and where its data lies.
struct Block {
  int s, h, nq, nk;
  int64_t q_at, kv_at;  // first element of this head's columns in the q and k/v buffers
  int64_t ctx_at;       // first element of this head's columns in ctx / dctx
  int64_t probs_at;     // start of the block in the probs buffer
  Block(const AttentionShape& a, int task)
      : s(task / a.heads),
        h(task % a.heads),
        nq(static_cast<int>(q_len(a, s))),
        nk(static_cast<int>(kv_len(a, s))),
        q_at(static_cast<int64_t>(a.q_offsets[s]) * a.q_stride + h * a.head_dim),
        kv_at(static_cast<int64_t>(a.kv_offsets[s]) * a.kv_stride + h * a.head_dim),
        ctx_at(static_cast<int64_t>(a.q_offsets[s]) * a.heads * a.head_dim + h * a.head_dim),
        probs_at(probs_block_offset(a, s, h)) {}
};

// Runs fn(block) for every (sequence, head) block in parallel; blocks write disjoint outputs.
template <typename Fn>
void for_each_block(const AttentionShape& a, Fn&& fn) {
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < a.num_seqs * a.heads; ++task) fn(Block(a, task));
}

}  // namespace

int64_t attention_probs_size(const AttentionShape& a) { return probs_block_offset(a, a.num_seqs, 0); }

int64_t attention_scratch_size(int max_len, int threads) {
  return 2 * static_cast<int64_t>(max_len) * max_len * threads;
}

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx, float* scratch,
                       const AttentionShape& a) {
  const Geometry g(a);
  for_each_block(a, [&](const Block& b) {
    if (b.nq == 0) return;
    float* p = probs + b.probs_at;
    // scores = q k^T / sqrt(d)    (nq, nk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b.nq, b.nk, g.d, g.scale, q + b.q_at, a.q_stride, k + b.kv_at,
                a.kv_stride, 0.0f, p, b.nk);
    // softmax, then dropout into the scratch, one row at a time while it is in L1
    const bool drop = a.dropout_p > 0.0f;
    float* pd = scratch + omp_get_thread_num() * g.per_thread;
    for (int i = 0; i < b.nq; ++i) {
      float* row = p + static_cast<int64_t>(i) * b.nk;
      float mx;
      const double sum = row_exp_sum_to(row, row, b.nk, &mx);
      scale_row(row, b.nk, static_cast<float>(1.0 / sum));
      if (drop)
        drop_probs_row(a, g.keep_scale, a.q_offsets[b.s] + i, b.h, row, pd + static_cast<int64_t>(i) * b.nk, b.nk);
    }
    const float* use = drop ? pd : p;
    // ctx_h = P v    (nq, d) into this head's columns of ctx
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b.nq, g.d, b.nk, 1.0f, use, b.nk, v + b.kv_at, a.kv_stride,
                0.0f, ctx + b.ctx_at, g.c);
  });
}

void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, float* scratch, const AttentionShape& a) {
  const Geometry g(a);
  for_each_block(a, [&](const Block& b) {
    if (b.nq == 0) {  // no query here: keys and values of this sequence get no gradient
      for (int j = 0; j < b.nk; ++j) {
        std::fill_n(dk + b.kv_at + int64_t{j} * a.kv_stride, g.d, 0.0f);
        std::fill_n(dv + b.kv_at + int64_t{j} * a.kv_stride, g.d, 0.0f);
      }
      return;
    }
    const float* dout = dctx + b.ctx_at;
    const float* p = probs + b.probs_at;
    const int64_t count = int64_t{b.nq} * b.nk;
    float* dp = scratch + omp_get_thread_num() * g.per_thread;
    float* pd = dp + count;
    const float* use = p;
    if (a.dropout_p > 0.0f) {
      for (int i = 0; i < b.nq; ++i) {
        const int64_t at = static_cast<int64_t>(i) * b.nk;
        drop_probs_row(a, g.keep_scale, a.q_offsets[b.s] + i, b.h, p + at, pd + at, b.nk);
      }
      use = pd;
    }
    // dv = Pd^T dout    (nk, d)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b.nk, g.d, b.nq, 1.0f, use, b.nk, dout, g.c, 0.0f,
                dv + b.kv_at, a.kv_stride);
    // dPd = dout v^T    (nq, nk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b.nq, b.nk, g.d, 1.0f, dout, g.c, v + b.kv_at, a.kv_stride,
                0.0f, dp, b.nk);
    // through dropout, then softmax: dS = P * (dP - rowsum(P * dP))
    for (int i = 0; i < b.nq; ++i) {
      float* dpi = dp + static_cast<int64_t>(i) * b.nk;
      if (a.dropout_p > 0.0f) drop_probs_row(a, g.keep_scale, a.q_offsets[b.s] + i, b.h, dpi, dpi, b.nk);
      softmax_backward_row(p + static_cast<int64_t>(i) * b.nk, dpi, b.nk);
    }
    // dq = dS k / sqrt(d)  (nq, d);  dk = dS^T q / sqrt(d)  (nk, d)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b.nq, g.d, b.nk, g.scale, dp, b.nk, k + b.kv_at, a.kv_stride,
                0.0f, dq + b.q_at, a.q_stride);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b.nk, g.d, b.nq, g.scale, dp, b.nk, q + b.q_at, a.q_stride,
                0.0f, dk + b.kv_at, a.kv_stride);
  });
}

}  // namespace tlm::kernels
