// The geometry both attention kernels share (attention_cpu.cpp, attention_absorbed_cpu.cpp):
// where a sequence's rows and probability blocks lie, and the dropout of one probability row.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/row_ops.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm::kernels {

inline int64_t q_len(const AttentionShape& a, int s) { return a.q_offsets[s + 1] - a.q_offsets[s]; }
inline int64_t kv_len(const AttentionShape& a, int s) { return a.kv_offsets[s + 1] - a.kv_offsets[s]; }

// Where block (s, h) starts in the probs buffer: (s, head, i, j) in sequence order.
inline int64_t probs_block_offset(const AttentionShape& a, int s, int h) {
  int64_t off = 0;
  for (int t = 0; t < s; ++t) off += a.heads * q_len(a, t) * kv_len(a, t);
  return off + h * q_len(a, s) * kv_len(a, s);
}

inline int max_kv_len(const AttentionShape& a) {
  int64_t m = 0;
  for (int s = 0; s < a.num_seqs; ++s) m = std::max(m, kv_len(a, s));
  return static_cast<int>(m);
}

inline float dropout_keep_scale(const AttentionShape& a) {
  return a.dropout_p > 0.0f ? 1.0f / (1.0f - a.dropout_p) : 1.0f;
}

// Dropout of query row `row` (global query-row index) in head h, nk values: out = kept ? p *
// keep_scale : 0 (out may be p). The stream follows the query's token, so the mask does not
// depend on the row's place in the batch.
inline void drop_probs_row(const AttentionShape& a, float keep_scale, int64_t row, int h, const float* p, float* out,
                           int nk) {
  dropout_row_to(p, out, nk, a.dropout_p, keep_scale,
                 row_stream(a.dropout_key, a.q_row_keys[row] + static_cast<uint64_t>(h)));
}

}  // namespace tlm::kernels
