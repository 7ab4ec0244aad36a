// Multi-head self-attention over packed variable-length sequences on CUDA (kernels.h's contract),
// tiled through shared memory. A block takes one (sequence, head) and a tile of its query rows
// (forward; backward's dq) or of its key rows (backward's dk, dv), and streams the operand it
// multiplies by (keys, values; or queries and dctx) through shared memory a chunk of rows at a
// time, so each is read from global memory once per tile rather than once per row.
// Forward: S = scale Q K^T, softmax per row (the probabilities saved before dropout), ctx = Pd V.
// Backward, per query tile: dP_ij = (dctx_i . v_j) through the dropout, D_i = sum_j P_ij dP_ij,
// dS_ij = P_ij (dP_ij - D_i) (kept in the work space, laid out as the probabilities), dq =
// scale dS K; per key tile: dk = scale dS^T Q and dv = Pd^T dctx over the sequence's query rows.
// Every sum runs in a fixed order (increasing key or query index; fixed shuffle trees), so the
// same inputs give the same bits; no atomics. The products' inner loops are explicit fused
// multiply-adds (the build's --fmad=false keeps the elementwise kernels' roundings the CPU's; here
// the order of the sums differs from the CPU's anyway, and an FMA halves the instructions).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "tlm/rng.h"

namespace tlm::cuda {

namespace {

using kernels::AttentionShape;

constexpr int kTileThreads = 256;
// 96 KB of dynamic shared memory per block, so that two blocks share an SM (Hopper: 227 KB).
constexpr int kSharedFloats = 24576;
constexpr int kMaxTile = 32;   // query (or key) rows of a tile
constexpr int kMaxChunk = 64;  // rows of the streamed operand per pass

// Floats between the rows of a streamed chunk in shared memory: odd, so that the lanes of a warp,
// reading one column of 32 consecutive rows, hit 32 distinct banks.
__host__ __device__ inline int pitch(int d) { return d | 1; }

// A tile's rows and the streamed chunk's rows, sized to the shared memory budget.
struct Tiles {
  int rows, chunk;
};

// forward and the query-tile backward: S (rows, max_kv_len) + T (rows, d) + C (chunk, pitch)
Tiles query_tiles(const AttentionShape& a) {
  const int d = a.head_dim, p = pitch(d);
  const int chunk = std::clamp(kSharedFloats / 3 / p, 1, kMaxChunk);
  const int rows = std::clamp((kSharedFloats - chunk * p) / (a.max_kv_len + d), 1, kMaxTile);
  return {rows, chunk};
}
size_t query_tile_bytes(const AttentionShape& a, Tiles t) {
  return sizeof(float) *
         (static_cast<size_t>(t.rows) * (a.max_kv_len + a.head_dim) + static_cast<size_t>(t.chunk) * pitch(a.head_dim));
}

// the key-tile backward: two (rows, d) sums + two (chunk, pitch) operands + two (chunk, rows)
// coefficients; rows == chunk
Tiles key_tiles(const AttentionShape& a) {
  const int d = a.head_dim, p = pitch(d);
  int t = kMaxTile;
  while (t > 1 && 2 * t * d + 2 * t * p + 2 * t * t > kSharedFloats) --t;
  return {t, t};
}
size_t key_tile_bytes(const AttentionShape& a, Tiles t) {
  return sizeof(float) *
         (2 * static_cast<size_t>(t.rows) * a.head_dim + 2 * static_cast<size_t>(t.chunk) * pitch(a.head_dim) +
          2 * static_cast<size_t>(t.chunk) * t.rows);
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

__device__ float keep_factor(const AttentionShape& a, uint64_t drop, int j, float keep_scale) {
  if (a.dropout_p <= 0.0f) return 1.0f;
  return counter_uniform(drop, static_cast<uint64_t>(j)) >= a.dropout_p ? keep_scale : 0.0f;
}

__device__ float keep_scale_of(const AttentionShape& a) {
  return a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
}

// One sequence and head as a block sees it.
struct Block {
  int s, h, d, c;
  int q0, nq;   // the sequence's first query row and query rows
  int kv0, nk;  // its first key row and key rows
  int64_t p0;   // where its head's (nq, nk) probabilities start
};

__device__ Block this_block(const AttentionShape& a, const int64_t* starts) {
  Block b;
  b.s = blockIdx.x;
  b.h = blockIdx.y;
  b.d = a.head_dim;
  b.c = a.heads * a.head_dim;
  b.q0 = a.q_offsets[b.s];
  b.nq = a.q_offsets[b.s + 1] - b.q0;
  b.kv0 = a.kv_offsets[b.s];
  b.nk = a.kv_offsets[b.s + 1] - b.kv0;
  b.p0 = starts[b.s] + int64_t{b.h} * b.nq * b.nk;
  return b;
}

// dst (rows, pitch) <- the head's d columns of `rows` rows of src from row r0 (stride floats apart)
__device__ void load_rows(float* dst, const float* src, int64_t r0, int rows, int stride, int col0, int d) {
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    const int r = e / d, t = e % d;
    dst[r * pitch(d) + t] = src[(r0 + r) * stride + col0 + t];
  }
}

// The two products below give each thread a 4 x 2 block of sums in registers, so that each value
// read from shared memory feeds 2 or 4 products: warp w takes rows w, w + 8, w + 16, w + 24 of a
// tile (at most kMaxTile) and lane l columns l and l + 32 of each 64 (its reads of a row are one
// broadcast; of 32 consecutive columns, or of 32 rows at an odd pitch, 32 distinct banks).
constexpr int kRowsPerThread = kMaxTile / (kTileThreads / 32), kColsPerThread = kMaxChunk / 32;
static_assert(kRowsPerThread == 4 && kColsPerThread == 2, "the tiles and the block's 8 warps must agree");

// out[i * ld_out + j0 + jj] = scale * (A row i . C row jj) for i < rows, jj < kc: A (rows, d),
// C (kc, pitch); rows <= kMaxTile, kc <= kMaxChunk
__device__ void dots(const float* A, const float* C, float* out, int ld_out, int j0, int rows, int kc, int d,
                     float scale) {
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float* x[kRowsPerThread];
  const float* y[kColsPerThread];
  // A thread past the tile's edge reads its last row or column; those sums are never written.
  for (int u = 0; u < kRowsPerThread; ++u) x[u] = A + min(w + 8 * u, rows - 1) * d;
  for (int v = 0; v < kColsPerThread; ++v) y[v] = C + min(lane + 32 * v, kc - 1) * pitch(d);
  float acc[kRowsPerThread][kColsPerThread] = {};
  for (int t = 0; t < d; ++t) {
    for (int u = 0; u < kRowsPerThread; ++u) {
      const float xu = x[u][t];
      for (int v = 0; v < kColsPerThread; ++v) acc[u][v] = __fmaf_rn(xu, y[v][t], acc[u][v]);
    }
  }
  for (int u = 0; u < kRowsPerThread; ++u) {
    for (int v = 0; v < kColsPerThread; ++v) {
      const int i = w + 8 * u, jj = lane + 32 * v;
      if (i < rows && jj < kc) out[i * ld_out + j0 + jj] = scale * acc[u][v];
    }
  }
}

// T[r * d + t] += sum_x W[r * wr + x * wx] * C[x * pitch + t] for r < rows (<= kMaxTile), x < inner
// in order, t < d: T (rows, d), C (inner, pitch). Which thread holds which sums differs from the
// callers' element loops: they sync between the two.
__device__ void accumulate(float* T, const float* W, int wr, int wx, const float* C, int rows, int inner, int d) {
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, p = pitch(d);
  for (int t0 = 0; t0 < d; t0 += 32 * kColsPerThread) {
    int r[kRowsPerThread], t[kColsPerThread];
    bool owned[kRowsPerThread][kColsPerThread];
    float acc[kRowsPerThread][kColsPerThread];
    for (int u = 0; u < kRowsPerThread; ++u) r[u] = min(w + 8 * u, rows - 1);
    for (int v = 0; v < kColsPerThread; ++v) t[v] = min(t0 + lane + 32 * v, d - 1);
    for (int u = 0; u < kRowsPerThread; ++u) {
      for (int v = 0; v < kColsPerThread; ++v) {
        owned[u][v] = w + 8 * u < rows && t0 + lane + 32 * v < d;
        acc[u][v] = owned[u][v] ? T[r[u] * d + t[v]] : 0.0f;  // another thread's sum is not read
      }
    }
    for (int x = 0; x < inner; ++x) {
      float cv[kColsPerThread];
      for (int v = 0; v < kColsPerThread; ++v) cv[v] = C[x * p + t[v]];
      for (int u = 0; u < kRowsPerThread; ++u) {
        const float wu = W[r[u] * wr + x * wx];
        for (int v = 0; v < kColsPerThread; ++v) acc[u][v] = __fmaf_rn(wu, cv[v], acc[u][v]);
      }
    }
    for (int u = 0; u < kRowsPerThread; ++u) {
      for (int v = 0; v < kColsPerThread; ++v) {
        if (owned[u][v]) T[r[u] * d + t[v]] = acc[u][v];
      }
    }
  }
}

// The sequence's key rows of src (keys or values: kv_stride apart, the head's columns) pass
// through C a chunk at a time. Every thread of the block calls; the first barrier also publishes
// what the block wrote before the call.
// S[i * max_kv_len + j] = scale * (T row i . src row j): T (rows, d); the caller syncs before
// reading S.
__device__ void dots_over_keys(const float* T, const float* src, float* C, float* S, const AttentionShape& a,
                               const Block& b, Tiles tiles, int rows, float scale) {
  for (int j0 = 0; j0 < b.nk; j0 += tiles.chunk) {
    const int kc = min(tiles.chunk, b.nk - j0);
    __syncthreads();  // C is free
    load_rows(C, src, b.kv0 + j0, kc, a.kv_stride, b.h * b.d, b.d);
    __syncthreads();
    dots(T, C, S, a.max_kv_len, j0, rows, kc, b.d, scale);
  }
}
// T[i * d + t] += sum_j W[i * max_kv_len + j] src[j][t], j in order: T (rows, d)
__device__ void accumulate_over_keys(float* T, const float* W, const float* src, float* C, const AttentionShape& a,
                                     const Block& b, Tiles tiles, int rows) {
  for (int j0 = 0; j0 < b.nk; j0 += tiles.chunk) {
    const int kc = min(tiles.chunk, b.nk - j0);
    __syncthreads();
    load_rows(C, src, b.kv0 + j0, kc, a.kv_stride, b.h * b.d, b.d);
    __syncthreads();
    accumulate(T, W + j0, a.max_kv_len, 1, C, rows, kc, b.d);
  }
  __syncthreads();  // the sums are complete, and readable by any thread
}

__device__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid (num_seqs, heads, query tiles); dynamic shared memory: query_tile_bytes
__global__ void forward_kernel(const float* q, const float* k, const float* v, float* probs, float* ctx,
                               AttentionShape a, const int64_t* starts, Tiles tiles) {
  extern __shared__ float smem[];
  const Block b = this_block(a, starts);
  const int i0 = blockIdx.z * tiles.rows;
  if (i0 >= b.nq) return;
  const int rows = min(tiles.rows, b.nq - i0), d = b.d, L = a.max_kv_len;
  float* S = smem;                // (tiles.rows, L): scores, then the dropped probabilities
  float* T = S + tiles.rows * L;  // (tiles.rows, d): the tile's queries, then its ctx sums
  float* C = T + tiles.rows * d;  // (tiles.chunk, pitch): keys, then values
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    T[e] = q[int64_t{b.q0 + i0 + e / d} * a.q_stride + b.h * d + e % d];
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  dots_over_keys(T, k, C, S, a, b, tiles, rows, scale);
  __syncthreads();
  const float keep_scale = keep_scale_of(a);
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int i = threadIdx.x >> 5; i < rows; i += warps) {  // a warp per row
    float* p = S + i * L;
    float mx = -INFINITY;
    for (int j = lane; j < b.nk; j += 32) mx = fmaxf(mx, p[j]);
    mx = warp_max(mx);
    double sum = 0;
    for (int j = lane; j < b.nk; j += 32) sum += expf(p[j] - mx);
    const float inv = static_cast<float>(1.0 / warp_sum(sum));
    const uint64_t drop = dropout_stream(a, b.q0 + i0 + i, b.h);
    float* saved = probs + b.p0 + int64_t{i0 + i} * b.nk;
    for (int j = lane; j < b.nk; j += 32) {
      const float pj = inv * expf(p[j] - mx);
      saved[j] = pj;
      p[j] = pj * keep_factor(a, drop, j, keep_scale);
    }
  }
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) T[e] = 0;  // every score is read: T is free
  accumulate_over_keys(T, S, v, C, a, b, tiles, rows);
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    ctx[int64_t{b.q0 + i0 + e / d} * b.c + b.h * d + e % d] = T[e];
  }
}

// grid (num_seqs, heads, query tiles): dS of the tile's rows (to ds, laid out as probs), dq.
// dynamic shared memory: query_tile_bytes
__global__ void backward_query_kernel(const float* dctx, const float* k, const float* v, const float* probs, float* dq,
                                      float* ds, AttentionShape a, const int64_t* starts, Tiles tiles) {
  extern __shared__ float smem[];
  const Block b = this_block(a, starts);
  const int i0 = blockIdx.z * tiles.rows;
  if (i0 >= b.nq) return;
  const int rows = min(tiles.rows, b.nq - i0), d = b.d, L = a.max_kv_len;
  float* G = smem;                // (tiles.rows, L): dctx . v, then dP, then dS
  float* T = G + tiles.rows * L;  // (tiles.rows, d): the tile's dctx, then its dq sums
  float* C = T + tiles.rows * d;  // (tiles.chunk, pitch): values, then keys
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    T[e] = dctx[int64_t{b.q0 + i0 + e / d} * b.c + b.h * d + e % d];
  }
  dots_over_keys(T, v, C, G, a, b, tiles, rows, 1.0f);
  __syncthreads();
  const float keep_scale = keep_scale_of(a);
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int i = threadIdx.x >> 5; i < rows; i += warps) {  // a warp per row
    float* g = G + i * L;
    const uint64_t drop = dropout_stream(a, b.q0 + i0 + i, b.h);
    const int64_t at = b.p0 + int64_t{i0 + i} * b.nk;
    double part = 0;
    for (int j = lane; j < b.nk; j += 32) {
      g[j] *= keep_factor(a, drop, j, keep_scale);  // dP: through the dropout
      part += static_cast<double>(probs[at + j]) * g[j];
    }
    const float D = static_cast<float>(warp_sum(part));
    for (int j = lane; j < b.nk; j += 32) {
      g[j] = probs[at + j] * (g[j] - D);
      ds[at + j] = g[j];
    }
  }
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) T[e] = 0;  // dctx is read: T is free
  accumulate_over_keys(T, G, k, C, a, b, tiles, rows);
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    dq[int64_t{b.q0 + i0 + e / d} * a.q_stride + b.h * d + e % d] = scale * T[e];
  }
}

// grid (num_seqs, heads, key tiles): dk_j = scale sum_i dS_ij q_i, dv_j = sum_i Pd_ij dctx_i over
// the sequence's query rows in order (none: zeros). dynamic shared memory: key_tile_bytes
__global__ void backward_key_kernel(const float* dctx, const float* q, const float* probs, const float* ds, float* dk,
                                    float* dv, AttentionShape a, const int64_t* starts, Tiles tiles) {
  extern __shared__ float smem[];
  const Block b = this_block(a, starts);
  const int j0 = blockIdx.z * tiles.rows;
  if (j0 >= b.nk) return;
  const int cols = min(tiles.rows, b.nk - j0), d = b.d, p = pitch(d), R = tiles.rows, n = tiles.chunk;
  float* K = smem;         // (R, d): dk sums
  float* V = K + R * d;    // (R, d): dv sums
  float* Qc = V + R * d;   // (n, pitch): a chunk of queries
  float* Gc = Qc + n * p;  // (n, pitch): their dctx
  float* Sc = Gc + n * p;  // (n, R): their dS with the tile's keys
  float* Pc = Sc + n * R;  // (n, R): their dropped probabilities
  for (int e = threadIdx.x; e < cols * d; e += blockDim.x) K[e] = V[e] = 0;
  const float keep_scale = keep_scale_of(a);
  for (int r0 = 0; r0 < b.nq; r0 += n) {
    const int qc = min(n, b.nq - r0);
    __syncthreads();
    load_rows(Qc, q, b.q0 + r0, qc, a.q_stride, b.h * d, d);
    load_rows(Gc, dctx, b.q0 + r0, qc, b.c, b.h * d, d);
    for (int e = threadIdx.x; e < qc * cols; e += blockDim.x) {
      const int i = e / cols, jj = e % cols;
      const int64_t at = b.p0 + int64_t{r0 + i} * b.nk + j0 + jj;
      Sc[i * R + jj] = ds[at];
      Pc[i * R + jj] = probs[at] * keep_factor(a, dropout_stream(a, b.q0 + r0 + i, b.h), j0 + jj, keep_scale);
    }
    __syncthreads();
    accumulate(K, Sc, 1, R, Qc, cols, qc, d);  // key jj's row of sums, query i's dS at Sc[i * R + jj]
    accumulate(V, Pc, 1, R, Gc, cols, qc, d);
  }
  __syncthreads();  // the sums are complete, and readable by any thread
  const float scale = 1.0f / sqrtf(static_cast<float>(d));
  for (int e = threadIdx.x; e < cols * d; e += blockDim.x) {
    const int64_t at = int64_t{b.kv0 + j0 + e / d} * a.kv_stride + b.h * d + e % d;
    dk[at] = scale * K[e];
    dv[at] = V[e];
  }
}

struct Work {
  int64_t* starts;  // (num_seqs + 1)
  float* ds;        // backward: dS, laid out as the probabilities (at most heads x q_rows x max_kv_len)
};

size_t starts_bytes(const AttentionShape& a) { return align_up(sizeof(int64_t) * static_cast<size_t>(a.num_seqs + 1)); }

Work split(const AttentionShape& a, void* work) {
  char* at = static_cast<char*>(work);
  return {reinterpret_cast<int64_t*>(at), reinterpret_cast<float*>(at + starts_bytes(a))};
}

dim3 grid(const AttentionShape& a, int tile_rows) {
  return dim3(static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(a.heads),
              static_cast<unsigned>((a.max_kv_len + tile_rows - 1) / tile_rows));
}

// Kernels whose blocks take over 48 KB of shared memory must say so before their launch.
template <typename Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  }
}

}  // namespace

size_t attention_work(const AttentionShape& a, bool backward) {
  return starts_bytes(a) +
         (backward ? align_up(sizeof(float) * static_cast<size_t>(a.heads) * a.q_rows * a.max_kv_len) : 0);
}

size_t attention_shared_bytes(const AttentionShape& a) {
  return std::max(query_tile_bytes(a, query_tiles(a)), key_tile_bytes(a, key_tiles(a)));
}

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx,
                       const AttentionShape& a, void* work, cudaStream_t s) {
  const Work w = split(a, work);
  probs_offsets_kernel<<<1, 1, 0, s>>>(a, w.starts);
  if (a.q_rows == 0) return;
  const Tiles t = query_tiles(a);
  const size_t bytes = query_tile_bytes(a, t);
  allow_shared(forward_kernel, bytes);
  forward_kernel<<<grid(a, t.rows), kTileThreads, bytes, s>>>(q, k, v, probs, ctx, a, w.starts, t);
}

void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, const AttentionShape& a, void* work, cudaStream_t s) {
  const Work w = split(a, work);
  probs_offsets_kernel<<<1, 1, 0, s>>>(a, w.starts);
  if (a.q_rows > 0) {
    const Tiles t = query_tiles(a);
    const size_t bytes = query_tile_bytes(a, t);
    allow_shared(backward_query_kernel, bytes);
    backward_query_kernel<<<grid(a, t.rows), kTileThreads, bytes, s>>>(dctx, k, v, probs, dq, w.ds, a, w.starts, t);
  }
  if (a.kv_rows > 0) {
    const Tiles t = key_tiles(a);
    const size_t bytes = key_tile_bytes(a, t);
    allow_shared(backward_key_kernel, bytes);
    backward_key_kernel<<<grid(a, t.rows), kTileThreads, bytes, s>>>(dctx, q, probs, w.ds, dk, dv, a, w.starts, t);
  }
}

}  // namespace tlm::cuda
