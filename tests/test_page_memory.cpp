// The CPU back end's host memory (kernels/cpu/page_memory.h): large buffers start on a 2 MiB
// boundary (where a transparent huge page can back them), small ones on 64 bytes, and both are
// usable to their last byte; the back end's buffers come zeroed from it.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

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

// Whether the memory at p lies in a mapping Linux marked for transparent huge pages (VmFlags hg
// in /proc/self/smaps); nullopt where the kernel has no THP to mark with.
std::optional<bool> marked_huge(const void* p) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled")) return std::nullopt;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= address(p) && address(p) < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return (line + " ").find(" hg ") != std::string::npos;
    }
  }
  return std::nullopt;
}

TEST(PageMemory, LargeBuffersAreMarkedForHugePages) {
  void* big = kernels::allocate_pages(3 * kernels::kHugePageBytes);
  const std::optional<bool> marked = marked_huge(big);
  kernels::free_pages(big);
  if (!marked) GTEST_SKIP() << "this kernel has no transparent huge pages to mark buffers for";
  EXPECT_TRUE(*marked) << "a 6 MiB buffer was not marked MADV_HUGEPAGE";
}

TEST(PageMemory, AVectorOnPagesGrowsAndKeepsItsValues) {
  kernels::PageVector<uint16_t> v;
  for (int i = 0; i < 1000; ++i) v.push_back(static_cast<uint16_t>(i));
  v.resize(3 * kernels::kHugePageBytes / 2);  // 3 Mi values, 6 MiB: the huge-page path
  EXPECT_EQ(address(v.data()) % kernels::kHugePageBytes, 0u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[static_cast<size_t>(i)], i);
  EXPECT_EQ(v.back(), 0);
}

// Fresh pages from the kernel are zero anyway; a small buffer is first freed dirty, so the
// allocator's reuse of it shows whether the back end zeroes.
TEST(PageMemory, TheCpuBackEndsBuffersComeZeroed) {
  auto backend = make_backend({}, Precision::kFp32);
  for (size_t bytes : {size_t{40}, 5 * kernels::kHugePageBytes + 12}) {
    void* dirty = backend->allocate(bytes);
    std::memset(dirty, 0xff, bytes);
    backend->deallocate(dirty);
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
