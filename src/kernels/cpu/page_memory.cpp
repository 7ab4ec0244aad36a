#include "kernels/cpu/page_memory.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tlm::kernels {

namespace {
std::atomic<int64_t> g_page_allocations{0};
}  // namespace

int64_t page_allocations() { return g_page_allocations.load(std::memory_order_relaxed); }

void* allocate_pages(size_t bytes) {
  const bool huge = bytes >= kHugePageBytes;
  const size_t align = huge ? kHugePageBytes : 64;
  if (bytes > SIZE_MAX - align) throw std::bad_alloc();        // the rounding up below would wrap
  const size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
  if (p == nullptr) throw std::bad_alloc();
  g_page_allocations.fetch_add(1, std::memory_order_relaxed);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: where THP is "never" (or the kernel has none) pages stay 4 KiB.
  if (huge) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

void free_pages(void* p) noexcept { std::free(p); }

}  // namespace tlm::kernels
