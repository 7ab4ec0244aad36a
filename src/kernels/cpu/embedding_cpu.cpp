#include "core/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                       const float* pos, const float* type, float* out, int n, int c) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* w = word + static_cast<int64_t>(ids[i]) * c;
    const float* p = pos + static_cast<int64_t>(positions[i]) * c;
    const float* t = type + static_cast<int64_t>(type_ids ? type_ids[i] : 0) * c;
    float* o = out + static_cast<int64_t>(i) * c;
    // HF adds (word + type) then position.
    for (int j = 0; j < c; ++j) o[j] = (w[j] + t[j]) + p[j];
  }
}

namespace {

// Columns [c0, c1) of the three gradients, every token in order (the three tables never overlap;
// cloned per instruction set, the same float additions in every clone).
TLM_CLONES void embedding_backward_columns(const float* dout, const int32_t* ids, const int32_t* positions,
                                           const int32_t* type_ids, float* dword, float* dpos, float* dtype, int n,
                                           int c, int c0, int c1) {
  for (int i = 0; i < n; ++i) {
    const float* __restrict d = dout + static_cast<int64_t>(i) * c;
    float* __restrict w = dword + static_cast<int64_t>(ids[i]) * c;
    float* __restrict p = dpos + static_cast<int64_t>(positions[i]) * c;
    float* __restrict t = dtype + static_cast<int64_t>(type_ids ? type_ids[i] : 0) * c;
    for (int j = c0; j < c1; ++j) {
      w[j] += d[j];
      p[j] += d[j];
      t[j] += d[j];
    }
  }
}

}  // namespace

void embedding_backward(const float* dout, const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                        float* dword, float* dpos, float* dtype, int n, int c) {
  // Column blocks: every thread owns a slice of the hidden dim for all tokens, so repeated ids
  // never race and the sum order is fixed.
  parallel_column_blocks(c, [&](int c0, int c1) {
    embedding_backward_columns(dout, ids, positions, type_ids, dword, dpos, dtype, n, c, c0, c1);
  });
}

}  // namespace tlm::kernels
