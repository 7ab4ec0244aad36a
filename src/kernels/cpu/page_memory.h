// Host memory for the CPU back end's large buffers. Buffers of 2 MiB and more are aligned to 2 MiB
// and marked MADV_HUGEPAGE, so Linux backs them with transparent huge pages where its setting is
// "madvise" (Debian's default): the optimiser and the bf16 conversions stream hundreds of MiB a
// step, and 4 KiB pages cost one TLB walk per 4 KiB of every stream. Elsewhere the mark is a no-op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace tlm::kernels {

// `bytes` of uninitialised memory, 64-byte aligned (2 MiB from kHugePageBytes on, rounded up to
// whole 2 MiB: at most 2 MiB more per buffer, which the back end's few large buffers afford);
// throws std::bad_alloc. Freed with free_pages.
void* allocate_pages(size_t bytes);
void free_pages(void* p) noexcept;
// allocate_pages calls so far in this process: these bypass operator new, so a test that counts
// allocations (test_no_allocation) counts these too.
int64_t page_allocations();
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// A std::vector allocator on allocate_pages (for scratch that grows to tens of MiB).
template <typename T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() = default;
  template <typename U>
  PageAllocator(const PageAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_pages(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { free_pages(p); }
  template <typename U>
  bool operator==(const PageAllocator<U>&) const noexcept {
    return true;
  }
};
template <typename T>
using PageVector = std::vector<T, PageAllocator<T>>;

}  // namespace tlm::kernels
