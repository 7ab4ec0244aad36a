// Row scatter-add with repeated indices, deterministic: the (index, row) pairs are sorted stably by
// index (CUB's radix sort), then each run of one index is summed by one block, its rows split
// over fixed lanes in order and the lanes added in lane order. No atomics: the bits repeat.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace tlm::cuda {

namespace {

constexpr int kLanes = 16;  // row lanes of a block; 32 columns each

// The sort's temporary storage for n pairs of index_bits-bit keys (the same arguments as the sort).
size_t sort_bytes(int n, int index_bits) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n, 0,
                                  index_bits);
  return bytes;
}

// Block (x: run start candidate p, y: 32-column slice). Only p that starts a run of equal keys
// works: it finds the run's end by binary search and adds the run's rows to dst[key].
__global__ void run_sums_kernel(const float* src, const int32_t* keys, const int32_t* rows, float* dst, int n, int c) {
  __shared__ float lanes[kLanes][32];
  const int p = blockIdx.x;
  if (p > 0 && keys[p - 1] == keys[p]) return;
  const int key = keys[p];
  int lo = p, hi = n;  // the first position after the run: keys are sorted
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (keys[mid] == key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  const int end = lo;
  const int j = blockIdx.y * 32 + threadIdx.x;
  float acc = 0;
  if (j < c) {
    for (int q = p + threadIdx.y; q < end; q += kLanes) acc += src[int64_t{rows[q]} * c + j];
  }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < c) {
    float s = 0;
    for (int y = 0; y < kLanes; ++y) s += lanes[y][threadIdx.x];
    dst[int64_t{key} * c + j] += s;
  }
}

}  // namespace

size_t index_add_work(int n, int index_bits) {
  return 3 * align_up(sizeof(int32_t) * static_cast<size_t>(n)) + sort_bytes(n, index_bits);
}

cudaError_t index_add_rows(const float* src, const int32_t* index, float* dst, int n, int c, int index_bits, void* work,
                           size_t work_bytes, cudaStream_t s) {
  if (n == 0 || c == 0) return cudaSuccess;
  char* at = static_cast<char*>(work);
  const size_t slot = align_up(sizeof(int32_t) * static_cast<size_t>(n));
  auto* rows_in = reinterpret_cast<int32_t*>(at);
  auto* keys_out = reinterpret_cast<int32_t*>(at + slot);
  auto* rows_out = reinterpret_cast<int32_t*>(at + 2 * slot);
  void* sort_space = at + 3 * slot;
  size_t sort_space_bytes = work_bytes - 3 * slot;
  iota(rows_in, n, s);
  // LSD radix sort is stable: rows of one key stay in increasing order.
  const cudaError_t rc = cub::DeviceRadixSort::SortPairs(sort_space, sort_space_bytes, index, keys_out, rows_in,
                                                         rows_out, n, 0, index_bits, s);
  if (rc != cudaSuccess) return rc;
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((c + 31) / 32));
  run_sums_kernel<<<grid, dim3(32, kLanes), 0, s>>>(src, keys_out, rows_out, dst, n, c);
  return cudaSuccess;
}

}  // namespace tlm::cuda
