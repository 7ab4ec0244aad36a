// Reductions of the CUDA back end, each in a fixed order (partials by block, then the partials
// summed in block order), so a result repeats bit for bit: no atomics.
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace tlm::cuda {

namespace {

// Column sums: a block of 32 columns x 8 row lanes sums a chunk of kChunkRows rows; lane y takes
// rows y, y + 8, ... of the chunk in order, then the lanes are added in lane order.
constexpr int kChunkRows = 256;
constexpr int kLanes = 8;

int64_t chunks_of(int n) { return (n + kChunkRows - 1) / kChunkRows; }

// Value(i, j, k): the k-th of `Outs` values summed for row i, column j.
template <int Outs, typename Value>
__global__ void column_partials_kernel(Value value, int n, int c, float* work) {
  __shared__ float lanes[Outs][kLanes][32];
  const int j = blockIdx.x * 32 + threadIdx.x;
  const int first = blockIdx.y * kChunkRows;
  const int last = min(n, first + kChunkRows);
  float acc[Outs] = {};
  if (j < c) {
    for (int i = first + threadIdx.y; i < last; i += kLanes) {
      for (int k = 0; k < Outs; ++k) acc[k] += value(i, j, k);
    }
  }
  for (int k = 0; k < Outs; ++k) lanes[k][threadIdx.y][threadIdx.x] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && j < c) {
    for (int k = 0; k < Outs; ++k) {
      float s = 0;
      for (int y = 0; y < kLanes; ++y) s += lanes[k][y][threadIdx.x];
      work[(int64_t{k} * gridDim.y + blockIdx.y) * c + j] = s;
    }
  }
}

// dst_k[j] += the chunks' partials of output k, in chunk order.
template <int Outs>
__global__ void column_finish_kernel(const float* work, int64_t chunks, int c, float* dst0, float* dst1) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int k = 0; k < Outs; ++k) {
    float s = 0;
    for (int64_t t = 0; t < chunks; ++t) s += work[(k * chunks + t) * c + j];
    (k == 0 ? dst0 : dst1)[j] += s;
  }
}

struct PlainValue {
  const float* x;
  int c;
  __device__ float operator()(int i, int j, int) const { return x[int64_t{i} * c + j]; }
};

// LayerNorm's parameter gradients: dy * xhat (for gamma) and dy (for beta).
struct LayerNormValue {
  const float *dy, *x, *mean, *rstd;
  int c;
  __device__ float operator()(int i, int j, int k) const {
    const int64_t e = int64_t{i} * c + j;
    return k == 0 ? dy[e] * ((x[e] - mean[i]) * rstd[i]) : dy[e];
  }
};

template <int Outs, typename Value>
void column_reduce(Value value, int n, int c, float* work, float* dst0, float* dst1, cudaStream_t s) {
  if (n == 0 || c == 0) return;
  const int64_t chunks = chunks_of(n);
  const dim3 grid((c + 31) / 32, static_cast<unsigned>(chunks));
  column_partials_kernel<Outs><<<grid, dim3(32, kLanes), 0, s>>>(value, n, c, work);
  column_finish_kernel<Outs><<<(c + kThreads - 1) / kThreads, kThreads, 0, s>>>(work, chunks, c, dst0, dst1);
}

// Whole-buffer reductions: kReduceBlocks-bounded partials over a grid-stride split fixed by n.
constexpr int64_t kPerThread = 16;
constexpr int64_t kMaxBlocks = 1024;

int64_t reduce_blocks(int64_t n) {
  return std::clamp<int64_t>((n + kThreads * kPerThread - 1) / (kThreads * kPerThread), 1, kMaxBlocks);
}

__global__ void sum_squares_kernel(const float* x, int64_t n, double* work) {
  __shared__ double shared[32];
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    s += static_cast<double>(x[i]) * x[i];
  }
  s = block_sum(s, shared);
  if (threadIdx.x == 0) work[blockIdx.x] = s;
}

__global__ void sum_doubles_kernel(const double* x, int64_t n, double* out) {
  __shared__ double shared[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) *out = s;
}

__device__ long long block_min(long long v, long long* shared) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>((blockDim.x + 31) >> 5) ? shared[lane] : LLONG_MAX;
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__global__ void first_nonfinite_kernel(const float* x, int64_t n, long long* work) {
  __shared__ long long shared[32];
  long long first = LLONG_MAX;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    if (!isfinite(x[i])) {
      first = i;
      break;  // a thread's later indices are larger
    }
  }
  first = block_min(first, shared);
  if (threadIdx.x == 0) work[blockIdx.x] = first;
}

__global__ void min_index_kernel(const long long* work, int64_t blocks, long long* out) {
  __shared__ long long shared[32];
  long long v = LLONG_MAX;
  for (int64_t i = threadIdx.x; i < blocks; i += blockDim.x) v = min(v, work[i]);
  v = block_min(v, shared);
  if (threadIdx.x == 0) *out = v == LLONG_MAX ? -1 : v;
}

}  // namespace

int64_t column_sums_work(int n, int c) { return chunks_of(n) * c; }

void column_sums(const float* x, float* dst, int n, int c, float* work, cudaStream_t s) {
  column_reduce<1>(PlainValue{x, c}, n, c, work, dst, nullptr, s);
}

void layernorm_param_grads(const float* dy, const float* x, const float* mean, const float* rstd, float* dgamma,
                           float* dbeta, int n, int c, float* work, cudaStream_t s) {
  column_reduce<2>(LayerNormValue{dy, x, mean, rstd, c}, n, c, work, dgamma, dbeta, s);
}

int64_t reduce_work(int64_t n) { return reduce_blocks(n); }

void sum_squares(const float* x, int64_t n, double* work, double* out, cudaStream_t s) {
  const int64_t blocks = reduce_blocks(n);
  sum_squares_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(x, n, work);
  sum_doubles_kernel<<<1, kThreads, 0, s>>>(work, blocks, out);
}

void sum_doubles(const double* x, int64_t n, double* out, cudaStream_t s) {
  sum_doubles_kernel<<<1, kThreads, 0, s>>>(x, n, out);
}

void first_nonfinite(const float* x, int64_t n, long long* work, long long* out, cudaStream_t s) {
  const int64_t blocks = reduce_blocks(n);
  first_nonfinite_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(x, n, work);
  min_index_kernel<<<1, kThreads, 0, s>>>(work, blocks, out);
}

}  // namespace tlm::cuda
