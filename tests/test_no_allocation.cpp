// A training step allocates nothing: every buffer is sized once when the model is built, and the
// bf16 GEMM's scratch when a step first needs it (at these fixed shapes, the first step; a longer
// batch later grows it once more). oneDNN's own per-call objects are the exception (below).
// This file replaces the global operator new for the test binary and counts calls while armed;
// the CPU back end's page allocations (kernels/cpu/page_memory.h), which bypass operator new, it
// counts itself.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "backend/backend.h"
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
// The operator new above takes its memory from malloc, so free is the matching release; GCC,
// which inlines std::allocator's operator new into callers here, cannot see that and warns.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

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

// The back ends a step is checked on: the default (fp32, OpenBLAS) and bf16 (native where the
// CPU has it, else emulated), whose GEMM keeps converted operands in page-allocated scratch.
std::vector<std::shared_ptr<Backend>> backends() {
  return {default_backend(), make_backend(Device{}, Precision::kBf16)};
}

// Whether a step runs GEMMs in oneDNN on `backend` (`wide`: the config whose products reach
// kSmallNativeBf16Products multiply-adds, which native bf16 sends there). Each oneDNN call
// allocates small objects with operator new that tlm cannot avoid (measured with oneDNN 2.6: its C
// execute builds an execution context, 5 allocations; the three memory handles of a call, 3
// more), so there a step is checked for pages (tlm's buffers and scratch) and for an unchanging
// count of operator new calls from one step to the next, not for none.
bool runs_onednn(const Backend& backend, bool wide) {
  return wide && backend.describe().find("oneDNN bf16") != std::string::npos;
}

TEST(NoAllocation, TrainingStepAllocatesNothing) {
  BertConfig padded = small_conv_config(Head::kMaskedLM);
  padded.conv.pad_to = 16;  // the paper's padded batches
  BertConfig wide = small_config(Head::kMaskedLM);
  wide.hidden_size = 128;  // products of at least kSmallNativeBf16Products: native bf16 runs in oneDNN
  wide.num_attention_heads = 2;
  wide.intermediate_size = 512;
  static_assert(int64_t{37} * 128 * 512 >= kernels::kSmallNativeBf16Products);  // 37 tokens x FFN
  for (const std::shared_ptr<Backend>& backend : backends()) {
    for (const BertConfig& cfg :
         {small_config(Head::kMaskedLM), small_config(Head::kClassification), small_conv_config(Head::kMaskedLM),
          small_conv_config(Head::kClassification), padded, wide}) {
      const bool is_wide = cfg.hidden_size == wide.hidden_size;
      SCOPED_TRACE(backend->describe() + ", " +
                   (is_wide              ? "wide"
                    : cfg.conv.enabled() ? (cfg.conv.pad_to > 0 ? "convolutional, padded" : "convolutional")
                                         : "plain"));
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
      long per_step[2];
      for (long& count : per_step) {
        g_allocations = 0;
        g_armed = true;
        step();
        g_armed = false;
        count = g_allocations.load();
      }
      EXPECT_EQ(kernels::page_allocations(), pages_before) << "pages allocated inside a training step";
      if (runs_onednn(*backend, is_wide)) {
        EXPECT_EQ(per_step[0], per_step[1]) << "operator new calls grew from one step to the next";
      } else {
        EXPECT_EQ(per_step[0] + per_step[1], 0) << "operator new called inside a training step";
      }
    }
  }
}

}  // namespace
}  // namespace tlm::testing
