// A training step allocates nothing: every buffer is sized once when the model is built, and the
// bf16 GEMM's scratch on the first step. This file replaces the global operator new for the test
// binary and counts calls while armed; the CPU back end's page allocations (kernels/cpu/
// page_memory.h, which bypass operator new) are counted by the back end itself.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm_cpu.h"
#include "kernels/cpu/page_memory.h"
#include "test_helpers.h"
#include "tlm/optim.h"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  if (g_armed.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace tlm::testing {
namespace {

TEST(NoAllocation, CounterSeesAllocations) {
  g_allocations = 0;
  g_armed = true;
  auto* v = new std::vector<int>(100);
  g_armed = false;
  delete v;
  EXPECT_GE(g_allocations.load(), 1) << "the counting operator new is not in effect";
}

TEST(NoAllocation, CounterSeesPageAllocations) {
  const int64_t before = kernels::page_allocations();
  kernels::PageVector<float> v(100);
  EXPECT_EQ(kernels::page_allocations(), before + 1);
}

// The back ends a step is checked on: the default (fp32), and bf16 (native where the CPU has it,
// else emulated), whose GEMM keeps converted operands in page-allocated scratch.
std::vector<std::shared_ptr<Backend>> backends() {
  std::vector<std::shared_ptr<Backend>> all{default_backend()};
  const bool native = kernels::CpuGemm::unavailable(kernels::GemmMode::kBf16OneDnn).empty();
  all.push_back(
      make_cpu_backend(Precision::kBf16, native ? kernels::GemmMode::kBf16OneDnn : kernels::GemmMode::kBf16Emulated));
  return all;
}

TEST(NoAllocation, TrainingStepAllocatesNothing) {
  BertConfig padded = small_conv_config(Head::kMaskedLM);
  padded.conv.pad_to = 16;  // the paper's padded batches
  for (const std::shared_ptr<Backend>& backend : backends()) {
    for (const BertConfig& cfg :
         {small_config(Head::kMaskedLM), small_config(Head::kClassification), small_conv_config(Head::kMaskedLM),
          small_conv_config(Head::kClassification), padded}) {
      SCOPED_TRACE(backend->describe() + ", " +
                   (cfg.conv.enabled() ? (cfg.conv.pad_to > 0 ? "convolutional, padded" : "convolutional") : "plain"));
      const Batch batch = random_batch(cfg, {16, 12, 9}, 3);
      BertModel model(cfg, limits_for(batch, 16), backend);
      model.init_weights(1);
      AdamW adam(model.table(), AdamWOptions{}, backend);
      auto step = [&] {
        model.zero_grad();
        const ForwardResult f = model.forward(batch, true, 7);
        model.backward(static_cast<float>(1.0 / f.count));
        clip_grad_norm(model.backend(), model.grads(), model.num_params(), 1.0);
        adam.step(model.params(), model.grads(), 1e-4);
      };
      step();  // let OpenMP and OpenBLAS set up their thread pools, and the bf16 GEMM its scratch
      const int64_t pages_before = kernels::page_allocations();
      g_allocations = 0;
      g_armed = true;
      step();
      step();
      g_armed = false;
      EXPECT_EQ(g_allocations.load(), 0) << "operator new called inside a training step";
      EXPECT_EQ(kernels::page_allocations(), pages_before) << "pages allocated inside a training step";
    }
  }
}

}  // namespace
}  // namespace tlm::testing
