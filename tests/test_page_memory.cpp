// The CPU back end's host memory (kernels/cpu/page_memory.h): large buffers start on a 2 MiB
// boundary (where a transparent huge page can back them), small ones on 64 bytes, and both are
// usable to their last byte; the back end's buffers come zeroed from it.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "backend/backend.h"
#include "kernels/cpu/page_memory.h"

namespace tlm::testing {
namespace {

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(PageMemory, LargeBuffersStartOnAHugePageAndSmallOnesOnACacheLine) {
  const size_t sizes[] = {
      1, 63, 4096, kernels::kHugePageBytes - 1, kernels::kHugePageBytes, 3 * kernels::kHugePageBytes + 5};
  for (size_t bytes : sizes) {
    void* p = kernels::allocate_pages(bytes);
    const uintptr_t align = bytes >= kernels::kHugePageBytes ? kernels::kHugePageBytes : 64;
    EXPECT_EQ(address(p) % align, 0u) << bytes << " bytes";
    std::memset(p, 0xab, bytes);  // every byte is ours (ASan/valgrind would see an overrun)
    EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 0xab);
    kernels::free_pages(p);
  }
}

TEST(PageMemory, AVectorOnPagesGrowsAndKeepsItsValues) {
  kernels::PageVector<uint16_t> v;
  for (int i = 0; i < 1000; ++i) v.push_back(static_cast<uint16_t>(i));
  v.resize(3 * kernels::kHugePageBytes / 2);  // 3 MiB of values: the huge-page path
  EXPECT_EQ(address(v.data()) % kernels::kHugePageBytes, 0u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[static_cast<size_t>(i)], i);
  EXPECT_EQ(v.back(), 0);
}

TEST(PageMemory, TheCpuBackEndsBuffersComeZeroed) {
  auto backend = make_backend({}, Precision::kFp32);
  for (size_t bytes : {size_t{40}, 5 * kernels::kHugePageBytes + 12}) {
    void* p = backend->allocate(bytes);
    const auto* b = static_cast<const unsigned char*>(p);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes; ++i) nonzero += b[i] != 0;
    EXPECT_EQ(nonzero, 0u) << bytes << " bytes";
    backend->deallocate(p);
  }
}

}  // namespace
}  // namespace tlm::testing
