// Multi-head self-attention over packed variable-length sequences on CUDA (kernels.h's contract).
// Forward: one block per (query row, head): scores in shared memory, softmax, the probabilities
// saved (before dropout), ctx = dropped probabilities x values. Backward: one block per (query
// row, head) for dq and the row's softmax statistic D_i = sum_j P_ij dP_ij, then one block per
// (key row, head) for dk and dv, summing over the sequence's query rows in order; both recompute
// dP_ij = dctx_i . v_j the same way, so they agree bit for bit. No atomics.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "tlm/rng.h"

namespace tlm::cuda {

namespace {

using kernels::AttentionShape;

constexpr int kAttnThreads = 128;

// The sequence whose rows [offsets[s], offsets[s+1]) hold `row`.
__device__ int sequence_of(const int32_t* offsets, int num_seqs, int row) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= row) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Where each sequence's (heads, qlen, kvlen) block of probabilities starts: one thread, in order.
__global__ void probs_offsets_kernel(AttentionShape a, int64_t* starts) {
  int64_t at = 0;
  for (int s = 0; s < a.num_seqs; ++s) {
    starts[s] = at;
    at += int64_t{a.heads} * (a.q_offsets[s + 1] - a.q_offsets[s]) * (a.kv_offsets[s + 1] - a.kv_offsets[s]);
  }
  starts[a.num_seqs] = at;
}

// The dropout stream of query row `row` (global) in head h: the CPU's (attention_cpu.cpp).
__device__ uint64_t dropout_stream(const AttentionShape& a, int row, int h) {
  return a.dropout_p > 0.0f ? row_stream(a.dropout_key, a.q_row_keys[row] + static_cast<uint64_t>(h)) : 0;
}

struct Row {
  int s, i;       // sequence, query index within it
  int nq, nk;     // the sequence's query and key rows
  int q0, kv0;    // its first query row and first key row
  int64_t p0;     // start of this row's probabilities (nk of them)
  uint64_t drop;  // this row's dropout stream in this head
};

__device__ Row query_row(const AttentionShape& a, const int64_t* starts, int row, int h) {
  Row r;
  r.s = sequence_of(a.q_offsets, a.num_seqs, row);
  r.q0 = a.q_offsets[r.s];
  r.kv0 = a.kv_offsets[r.s];
  r.i = row - r.q0;
  r.nq = a.q_offsets[r.s + 1] - r.q0;
  r.nk = a.kv_offsets[r.s + 1] - r.kv0;
  r.p0 = starts[r.s] + (int64_t{h} * r.nq + r.i) * r.nk;
  r.drop = dropout_stream(a, row, h);
  return r;
}

__device__ float keep_factor(const AttentionShape& a, uint64_t drop, int j, float keep_scale) {
  if (a.dropout_p <= 0.0f) return 1.0f;
  return counter_uniform(drop, static_cast<uint64_t>(j)) >= a.dropout_p ? keep_scale : 0.0f;
}

// dot of d floats of a (stride 1) and b (stride 1), in order
__device__ float dot(const float* a, const float* b, int d) {
  float s = 0;
  for (int t = 0; t < d; ++t) s += a[t] * b[t];
  return s;
}

// grid (q_rows, heads); shared: max_kv_len + head_dim floats
__global__ void forward_kernel(const float* q, const float* k, const float* v, float* probs, float* ctx,
                               AttentionShape a, const int64_t* starts) {
  extern __shared__ float smem[];
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  const int row = blockIdx.x, h = blockIdx.y, d = a.head_dim;
  const Row r = query_row(a, starts, row, h);
  float* p = smem;                  // (nk)
  float* qi = smem + a.max_kv_len;  // (d)
  for (int t = threadIdx.x; t < d; t += blockDim.x) qi[t] = q[int64_t{row} * a.q_stride + h * d + t];
  __syncthreads();
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < r.nk; j += blockDim.x) {
    p[j] = scale * dot(qi, k + int64_t{r.kv0 + j} * a.kv_stride + h * d, d);
    mx = fmaxf(mx, p[j]);
  }
  mx = block_max(mx, fshared);
  double sum = 0;
  for (int j = threadIdx.x; j < r.nk; j += blockDim.x) sum += expf(p[j] - mx);
  sum = block_sum(sum, dshared);
  const float inv = static_cast<float>(1.0 / sum);
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
  for (int j = threadIdx.x; j < r.nk; j += blockDim.x) {
    const float pj = inv * expf(p[j] - mx);
    probs[r.p0 + j] = pj;
    p[j] = pj * keep_factor(a, r.drop, j, keep_scale);
  }
  __syncthreads();
  const int c = a.heads * d;
  for (int t = threadIdx.x; t < d; t += blockDim.x) {
    float acc = 0;
    for (int j = 0; j < r.nk; ++j) acc += p[j] * v[int64_t{r.kv0 + j} * a.kv_stride + h * d + t];
    ctx[int64_t{row} * c + h * d + t] = acc;
  }
}

// dP_ij of the dropped probabilities' gradient, through the dropout: dctx_i . v_j times the keep factor.
__device__ float dprob(const AttentionShape& a, const float* dctx_i, const float* v, int kv_row, int h, uint64_t drop,
                       int j, float keep_scale) {
  const float g = dot(dctx_i, v + int64_t{kv_row} * a.kv_stride + h * a.head_dim, a.head_dim);
  return g * keep_factor(a, drop, j, keep_scale);
}

// grid (q_rows, heads): dS_ij = P_ij (dP_ij - D_i), dq_i = scale sum_j dS_ij k_j; D_i saved.
// shared: max_kv_len + head_dim floats
__global__ void backward_query_kernel(const float* dctx, const float* k, const float* v, const float* probs, float* dq,
                                      AttentionShape a, const int64_t* starts, float* row_stat) {
  extern __shared__ float smem[];
  __shared__ float fshared[32];
  const int row = blockIdx.x, h = blockIdx.y, d = a.head_dim, c = a.heads * d;
  const Row r = query_row(a, starts, row, h);
  float* ds = smem;                 // (nk)
  float* gi = smem + a.max_kv_len;  // (d) dctx of this row and head
  for (int t = threadIdx.x; t < d; t += blockDim.x) gi[t] = dctx[int64_t{row} * c + h * d + t];
  __syncthreads();
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
  float part = 0;
  for (int j = threadIdx.x; j < r.nk; j += blockDim.x) {
    ds[j] = dprob(a, gi, v, r.kv0 + j, h, r.drop, j, keep_scale);
    part += probs[r.p0 + j] * ds[j];
  }
  const float D = block_sum(part, fshared);
  for (int j = threadIdx.x; j < r.nk; j += blockDim.x) ds[j] = probs[r.p0 + j] * (ds[j] - D);
  if (threadIdx.x == 0) row_stat[int64_t{row} * a.heads + h] = D;
  __syncthreads();
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  for (int t = threadIdx.x; t < d; t += blockDim.x) {
    float acc = 0;
    for (int j = 0; j < r.nk; ++j) acc += ds[j] * k[int64_t{r.kv0 + j} * a.kv_stride + h * d + t];
    dq[int64_t{row} * a.q_stride + h * d + t] = scale * acc;
  }
}

// grid (kv_rows, heads): dk_j = scale sum_i dS_ij q_i, dv_j = sum_i Pd_ij dctx_i over the
// sequence's query rows in order. shared: 2 * max_kv_len floats
__global__ void backward_key_kernel(const float* dctx, const float* q, const float* v, const float* probs, float* dk,
                                    float* dv, AttentionShape a, const int64_t* starts, const float* row_stat) {
  extern __shared__ float smem[];
  const int kv_row = blockIdx.x, h = blockIdx.y, d = a.head_dim, c = a.heads * d;
  const int s = sequence_of(a.kv_offsets, a.num_seqs, kv_row);
  const int kv0 = a.kv_offsets[s], j = kv_row - kv0, nk = a.kv_offsets[s + 1] - kv0;
  const int q0 = a.q_offsets[s], nq = a.q_offsets[s + 1] - q0;
  float* ds = smem;                 // (nq) dS_ij
  float* pd = smem + a.max_kv_len;  // (nq) dropped P_ij
  const float keep_scale = a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
  for (int i = threadIdx.x; i < nq; i += blockDim.x) {
    const int row = q0 + i;
    const uint64_t drop = dropout_stream(a, row, h);
    const float pij = probs[starts[s] + (int64_t{h} * nq + i) * nk + j];
    const float g = dprob(a, dctx + int64_t{row} * c + h * d, v, kv_row, h, drop, j, keep_scale);
    ds[i] = pij * (g - row_stat[int64_t{row} * a.heads + h]);
    pd[i] = pij * keep_factor(a, drop, j, keep_scale);
  }
  __syncthreads();
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  for (int t = threadIdx.x; t < d; t += blockDim.x) {
    float acc_k = 0, acc_v = 0;
    for (int i = 0; i < nq; ++i) {
      acc_k += ds[i] * q[int64_t{q0 + i} * a.q_stride + h * d + t];
      acc_v += pd[i] * dctx[int64_t{q0 + i} * c + h * d + t];
    }
    dk[int64_t{kv_row} * a.kv_stride + h * d + t] = scale * acc_k;
    dv[int64_t{kv_row} * a.kv_stride + h * d + t] = acc_v;
  }
}

struct Work {
  int64_t* starts;  // (num_seqs + 1)
  float* row_stat;  // (q_rows, heads)
};

Work split(const AttentionShape& a, void* work) {
  char* at = static_cast<char*>(work);
  return {reinterpret_cast<int64_t*>(at),
          reinterpret_cast<float*>(at + align_up(sizeof(int64_t) * static_cast<size_t>(a.num_seqs + 1)))};
}

}  // namespace

size_t attention_work(const AttentionShape& a) {
  return align_up(sizeof(int64_t) * static_cast<size_t>(a.num_seqs + 1)) +
         align_up(sizeof(float) * static_cast<size_t>(a.q_rows) * a.heads);
}

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx,
                       const AttentionShape& a, void* work, cudaStream_t s) {
  const Work w = split(a, work);
  probs_offsets_kernel<<<1, 1, 0, s>>>(a, w.starts);
  if (a.q_rows == 0) return;
  const size_t shared = sizeof(float) * static_cast<size_t>(a.max_kv_len + a.head_dim);
  forward_kernel<<<dim3(a.q_rows, a.heads), kAttnThreads, shared, s>>>(q, k, v, probs, ctx, a, w.starts);
}

void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, const AttentionShape& a, void* work, cudaStream_t s) {
  const Work w = split(a, work);
  probs_offsets_kernel<<<1, 1, 0, s>>>(a, w.starts);
  if (a.q_rows > 0) {
    const size_t shared = sizeof(float) * static_cast<size_t>(a.max_kv_len + a.head_dim);
    backward_query_kernel<<<dim3(a.q_rows, a.heads), kAttnThreads, shared, s>>>(dctx, k, v, probs, dq, a, w.starts,
                                                                                w.row_stat);
  }
  if (a.kv_rows > 0) {
    const size_t shared = sizeof(float) * static_cast<size_t>(2 * a.max_kv_len);
    backward_key_kernel<<<dim3(a.kv_rows, a.heads), kAttnThreads, shared, s>>>(dctx, q, v, probs, dk, dv, a, w.starts,
                                                                               w.row_stat);
  }
}

}  // namespace tlm::cuda
