// OpenMP helpers whose results do not depend on scheduling: work is split into fixed blocks,
// and reductions are summed in a fixed order.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace tlm {

constexpr int kMaxThreads = 256;

// Calls fn(begin, end) on disjoint column blocks [begin, end) of [0, n), in parallel.
// Used for reductions over rows: each column is summed by one thread in row order, so the
// result is bit-identical for any thread count.
template <typename Fn>
void parallel_column_blocks(int n, Fn&& fn) {
  constexpr int kBlock = 64;
  const int blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < blocks; ++b) fn(b * kBlock, std::min(n, (b + 1) * kBlock));
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
