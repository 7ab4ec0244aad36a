// core/parallel.h: the splits its reductions rely on for results that do not depend on the
// thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "core/parallel.h"

namespace tlm::testing {
namespace {

// Every column in exactly one call, calls in whole 64-column blocks, at most one call per thread.
TEST(Parallel, ColumnBlocksCoverEveryColumnOnce) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 4, 5}) {
    omp_set_num_threads(threads);
    for (int n : {0, 1, 63, 64, 65, 200, 1536, 30522}) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      std::mutex lock;
      int calls = 0;
      parallel_column_blocks(n, [&](int c0, int c1) {
        const std::lock_guard<std::mutex> guard(lock);
        ++calls;
        EXPECT_EQ(c0 % 64, 0) << "n=" << n << " threads=" << threads;
        EXPECT_TRUE(c1 == n || c1 % 64 == 0) << "n=" << n << " threads=" << threads;
        EXPECT_LT(c0, c1) << "n=" << n << " threads=" << threads;
        EXPECT_GE(c0, 0) << "n=" << n << " threads=" << threads;
        EXPECT_LE(c1, n) << "n=" << n << " threads=" << threads;
        for (int c = std::max(c0, 0); c < std::min(c1, n); ++c) ++seen[static_cast<size_t>(c)];
      });
      EXPECT_EQ(seen, std::vector<int>(static_cast<size_t>(n), 1)) << "n=" << n << " threads=" << threads;
      EXPECT_LE(calls, threads) << "n=" << n;
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace tlm::testing
