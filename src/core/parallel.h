// OpenMP helpers whose results do not depend on scheduling: work is split into fixed blocks,
// and reductions are summed in a fixed order.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace tlm {

constexpr int kMaxThreads = 256;

// Calls fn(begin, end) on disjoint column ranges [begin, end) of [0, n), at most one per thread,
// in whole 64-column blocks. Used for reductions over rows: each column is summed by one thread in
// row order, so the result is bit-identical for any thread count. One range per thread, not one
// call per block: a thread then streams through the rows once, not once per 64 columns.
template <typename Fn>
void parallel_column_blocks(int n, Fn&& fn) {
  constexpr int kBlock = 64;
  const int blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel if (blocks > 1)  // one block: no thread team to wake
  {
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int b0 = static_cast<int>(int64_t{blocks} * t / threads);
    const int b1 = static_cast<int>(int64_t{blocks} * (t + 1) / threads);
    if (b0 < b1) fn(b0 * kBlock, std::min(n, b1 * kBlock));
  }
}

// Calls fn(begin, end) on fixed chunks of [0, n) in parallel (16,384 elements, whole SIMD widths);
// a single chunk runs on the calling thread.
template <typename Fn>
void parallel_chunks(int64_t n, Fn&& fn) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) fn(c * kChunk, std::min(n, (c + 1) * kChunk));
}

}  // namespace tlm
