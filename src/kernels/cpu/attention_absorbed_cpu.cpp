// Attention at few query rows with the key and value projections absorbed (kernels.h).
//
// Layouts. The products that read a head's weights run once per head over every query row
// ("head-major": (heads, r, c), row (h, i)); the products that read a sequence's input rows run
// once per sequence over all its heads at once ("block order": row heads*q0_s + h*nq_s + i, the
// probabilities' (s, head, i) order), so each sequence's rows are read twice per pass, not twice
// per head. to_block / to_head_major move a (r*heads, c) array between the two.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "kernels/cpu/attention_blocks.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

namespace {

struct Absorbed {
  int heads, d, c, r;
  float scale, keep_scale;
  int64_t hrc;  // heads * r * c: one array of per-(query, head) rows
  explicit Absorbed(const AttentionShape& a)
      : heads(a.heads),
        d(a.head_dim),
        c(a.heads * a.head_dim),
        r(a.q_offsets[a.num_seqs]),
        scale(1.0f / std::sqrt(static_cast<float>(a.head_dim))),
        keep_scale(dropout_keep_scale(a)),
        hrc(int64_t{heads} * r * c) {}
  // First block-order row of sequence s, and of its head h.
  int64_t block_row(const AttentionShape& a, int s, int h = 0) const {
    return int64_t{heads} * a.q_offsets[s] + h * q_len(a, s);
  }
  // Per-thread scratch for one sequence's probabilities and their gradient.
  int64_t per_thread(const AttentionShape& a) const {
    int64_t most = 0;
    for (int s = 0; s < a.num_seqs; ++s) most = std::max(most, q_len(a, s) * kv_len(a, s));
    return 2 * heads * most;
  }
};

// Copies a (r*heads, c) array between block order and head-major (heads, r, c), either way.
enum class Order { kToHeadMajor, kToBlock };
void reorder(const AttentionShape& a, const Absorbed& g, Order to, const float* src, float* dst) {
#pragma omp parallel for schedule(static)
  for (int s = 0; s < a.num_seqs; ++s) {
    for (int h = 0; h < g.heads; ++h) {
      const int64_t block_at = g.block_row(a, s, h) * g.c, head_at = (int64_t{h} * g.r + a.q_offsets[s]) * g.c;
      const int64_t from = to == Order::kToHeadMajor ? block_at : head_at;
      const int64_t into = to == Order::kToHeadMajor ? head_at : block_at;
      std::memcpy(dst + into, src + from, sizeof(float) * q_len(a, s) * g.c);
    }
  }
}
void to_head_major(const AttentionShape& a, const Absorbed& g, const float* block, float* head_major) {
  reorder(a, g, Order::kToHeadMajor, block, head_major);
}
void to_block(const AttentionShape& a, const Absorbed& g, const float* head_major, float* block) {
  reorder(a, g, Order::kToBlock, head_major, block);
}

// Runs fn(s, thread scratch) for every sequence with query rows, in parallel.
template <typename Fn>
void for_each_sequence(const AttentionShape& a, float* thread_scratch, int64_t per_thread, Fn&& fn) {
#pragma omp parallel for schedule(dynamic)
  for (int s = 0; s < a.num_seqs; ++s) fn(s, thread_scratch + omp_get_thread_num() * per_thread);
}

}  // namespace

int64_t absorbed_attention_saved_size(int q_rows, int heads, int c) {
  return int64_t{q_rows} * heads * (2 * int64_t{c} + 1);
}

int64_t absorbed_attention_scratch_size(int q_rows, int max_q_len, int max_len, int heads, int c, int threads) {
  const int64_t hrc = int64_t{q_rows} * heads * c;
  return 3 * hrc + int64_t{q_rows} * heads + int64_t{threads} * 2 * heads * max_q_len * max_len;
}

// saved: qa (r*heads, c) = q_h Wk_h in block order, z (r*heads, c) = Pd x_s in block order, psum
// (r*heads) = rowsum(Pd). scratch: head-major (heads, r, c), then the threads' (heads*nq_s, nk_s).
void absorbed_attention_forward(const float* q, const float* x, const float* wk, const float* wv, const float* bv,
                                float* probs, float* saved, float* ctx, float* scratch, const AttentionShape& a) {
  const Absorbed g(a);
  float *qa = saved, *z = saved + g.hrc, *psum = saved + 2 * g.hrc;
  float* head_major = scratch;
  float* threads = scratch + 3 * g.hrc + int64_t{g.r} * g.heads;
  if (g.r == 0) return;  // no query rows: nothing to compute
  // qa_h = q_h Wk_h: (r, d) x (d, c) per head
  for (int h = 0; h < g.heads; ++h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.r, g.c, g.d, 1.0f, q + h * g.d, a.q_stride,
                wk + int64_t{h} * g.d * g.c, g.c, 0.0f, head_major + int64_t{h} * g.r * g.c, g.c);
  }
  to_block(a, g, head_major, qa);
  const bool drop = a.dropout_p > 0.0f;
  for_each_sequence(a, threads, g.per_thread(a), [&](int s, float* pd) {
    const int nq = static_cast<int>(q_len(a, s)), nk = static_cast<int>(kv_len(a, s)), rows = g.heads * nq;
    if (nq == 0) return;
    const int64_t at = g.block_row(a, s);
    const float* xs = x + int64_t{a.kv_offsets[s]} * a.kv_stride;
    float* p = probs + probs_block_offset(a, s, 0);  // (heads*nq, nk): rows (h, i) as at
    // scores = qa_s x_s^T / sqrt(d)    (heads*nq, nk)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, g.c, g.scale, qa + at * g.c, g.c, xs, a.kv_stride,
                0.0f, p, nk);
    for (int h = 0; h < g.heads; ++h) {
      for (int i = 0; i < nq; ++i) {
        const int64_t row = int64_t{h} * nq + i;
        float* pr = p + row * nk;
        float mx;
        const double sum = row_exp_sum_to(pr, pr, nk, &mx);
        scale_row(pr, nk, static_cast<float>(1.0 / sum));
        float* used = pr;
        if (drop) {
          used = pd + row * nk;
          drop_probs_row(a, g.keep_scale, a.q_offsets[s] + i, h, pr, used, nk);
        }
        double total = 0;
        for (int j = 0; j < nk; ++j) total += used[j];
        psum[at + row] = static_cast<float>(total);
      }
    }
    // z_s = Pd x_s    (heads*nq, c)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, g.c, nk, 1.0f, drop ? pd : p, nk, xs, a.kv_stride,
                0.0f, z + at * g.c, g.c);
  });
  // ctx_h = z_h Wv_h^T + psum_h bv_h: (r, c) x (c, d) per head, into the head's columns
  to_head_major(a, g, z, head_major);
  for (int h = 0; h < g.heads; ++h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.r, g.d, g.c, 1.0f, head_major + int64_t{h} * g.r * g.c, g.c,
                wv + int64_t{h} * g.d * g.c, g.c, 0.0f, ctx + h * g.d, g.c);
  }
#pragma omp parallel for schedule(static)
  for (int s = 0; s < a.num_seqs; ++s) {
    const int nq = static_cast<int>(q_len(a, s));
    for (int i = 0; i < nq; ++i) {
      float* out = ctx + int64_t{a.q_offsets[s] + i} * g.c;
      for (int h = 0; h < g.heads; ++h) {
        const float w = psum[g.block_row(a, s, h) + i];
        for (int j = 0; j < g.d; ++j) out[h * g.d + j] += w * bv[h * g.d + j];
      }
    }
  }
}

// scratch: head-major (heads, r, c), dz and dqa in block order (r*heads, c) each, gsum (r*heads)
// = d rowsum(Pd), then the threads' dPd and Pd (heads*nq_s, nk_s) each.
void absorbed_attention_backward(const float* dctx, const float* q, const float* x, const float* wk, const float* wv,
                                 const float* bv, const float* probs, const float* saved, float* dq, float* dx,
                                 float* dwk, float* dwv, float* dbv, float* scratch, const AttentionShape& a) {
  const Absorbed g(a);
  const float *qa = saved, *z = saved + g.hrc, *psum = saved + 2 * g.hrc;
  float *head_major = scratch, *dz = scratch + g.hrc, *dqa = scratch + 2 * g.hrc, *gsum = scratch + 3 * g.hrc;
  float* threads = gsum + int64_t{g.r} * g.heads;
  if (g.r == 0) {  // no query rows: the input gets no gradient from this attention
    for (int64_t j = 0; j < a.kv_offsets[a.num_seqs]; ++j) std::fill_n(dx + j * a.kv_stride, g.c, 0.0f);
    return;
  }
  // dWv_h += dctx_h^T z_h: (d, r) x (r, c) per head
  to_head_major(a, g, z, head_major);
  for (int h = 0; h < g.heads; ++h) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.d, g.c, g.r, 1.0f, dctx + h * g.d, g.c,
                head_major + int64_t{h} * g.r * g.c, g.c, 1.0f, dwv + int64_t{h} * g.d * g.c, g.c);
  }
  // dbv_h += sum over query rows of psum * dctx_h (rows in order: one thread per column range);
  // gsum = dctx_h . bv_h, the gradient of psum
  parallel_column_blocks(g.c, [&](int64_t begin, int64_t end) {
    for (int s = 0; s < a.num_seqs; ++s) {
      for (int i = 0; i < q_len(a, s); ++i) {
        const float* dc = dctx + int64_t{a.q_offsets[s] + i} * g.c;
        for (int64_t col = begin; col < end; ++col)
          dbv[col] += psum[g.block_row(a, s, static_cast<int>(col / g.d)) + i] * dc[col];
      }
    }
  });
#pragma omp parallel for schedule(static)
  for (int s = 0; s < a.num_seqs; ++s) {
    for (int i = 0; i < q_len(a, s); ++i) {
      const float* dc = dctx + int64_t{a.q_offsets[s] + i} * g.c;
      for (int h = 0; h < g.heads; ++h) {
        float dot = 0;
        for (int j = 0; j < g.d; ++j) dot += dc[h * g.d + j] * bv[h * g.d + j];
        gsum[g.block_row(a, s, h) + i] = dot;
      }
    }
  }
  // dz_h = dctx_h Wv_h: (r, d) x (d, c) per head
  for (int h = 0; h < g.heads; ++h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.r, g.c, g.d, 1.0f, dctx + h * g.d, g.c,
                wv + int64_t{h} * g.d * g.c, g.c, 0.0f, head_major + int64_t{h} * g.r * g.c, g.c);
  }
  to_block(a, g, head_major, dz);
  const bool drop = a.dropout_p > 0.0f;
  const int64_t per_thread = g.per_thread(a);
  for_each_sequence(a, threads, per_thread, [&](int s, float* dp) {
    const int nq = static_cast<int>(q_len(a, s)), nk = static_cast<int>(kv_len(a, s)), rows = g.heads * nq;
    float* dxs = dx + int64_t{a.kv_offsets[s]} * a.kv_stride;
    if (nq == 0) {  // no query here: the sequence's rows get no gradient from this attention
      for (int j = 0; j < nk; ++j) std::fill_n(dxs + int64_t{j} * a.kv_stride, g.c, 0.0f);
      return;
    }
    const int64_t at = g.block_row(a, s);
    const float* xs = x + int64_t{a.kv_offsets[s]} * a.kv_stride;
    const float* p = probs + probs_block_offset(a, s, 0);
    float* pd = dp + per_thread / 2;
    if (drop) {
      for (int h = 0; h < g.heads; ++h) {
        for (int i = 0; i < nq; ++i) {
          const int64_t off = (int64_t{h} * nq + i) * nk;
          drop_probs_row(a, g.keep_scale, a.q_offsets[s] + i, h, p + off, pd + off, nk);
        }
      }
    }
    // dx_s = Pd^T dz_s    (nk, c)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, g.c, rows, 1.0f, drop ? pd : p, nk, dz + at * g.c, g.c,
                0.0f, dxs, a.kv_stride);
    // dPd = dz_s x_s^T + gsum    (heads*nq, nk); then through dropout and softmax: dS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, g.c, 1.0f, dz + at * g.c, g.c, xs, a.kv_stride, 0.0f,
                dp, nk);
    for (int h = 0; h < g.heads; ++h) {
      for (int i = 0; i < nq; ++i) {
        const int64_t row = int64_t{h} * nq + i;
        float* dpr = dp + row * nk;
        const float add = gsum[at + row];
        for (int j = 0; j < nk; ++j) dpr[j] += add;
        if (drop) drop_probs_row(a, g.keep_scale, a.q_offsets[s] + i, h, dpr, dpr, nk);
        softmax_backward_row(p + row * nk, dpr, nk);
      }
    }
    // dqa_s = dS x_s / sqrt(d)  (heads*nq, c);  dx_s += dS^T qa_s / sqrt(d)  (nk, c)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, g.c, nk, g.scale, dp, nk, xs, a.kv_stride, 0.0f,
                dqa + at * g.c, g.c);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, g.c, rows, g.scale, dp, nk, qa + at * g.c, g.c, 1.0f, dxs,
                a.kv_stride);
  });
  // dq_h = dqa_h Wk_h^T: (r, c) x (c, d);  dWk_h += q_h^T dqa_h: (d, r) x (r, c), per head
  to_head_major(a, g, dqa, head_major);
  for (int h = 0; h < g.heads; ++h) {
    const float* dqa_h = head_major + int64_t{h} * g.r * g.c;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.r, g.d, g.c, 1.0f, dqa_h, g.c, wk + int64_t{h} * g.d * g.c,
                g.c, 0.0f, dq + h * g.d, a.q_stride);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.d, g.c, g.r, 1.0f, q + h * g.d, a.q_stride, dqa_h, g.c, 1.0f,
                dwk + int64_t{h} * g.d * g.c, g.c);
  }
}

}  // namespace tlm::kernels
