// Elementwise kernels of the CUDA back end: grid-stride loops, one value per thread and step.
#include "kernels/bf16_bits.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "tlm/rng.h"

namespace tlm::cuda {

namespace {

#define TLM_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

__device__ float two_phi(float x) { return 1.0f + erff(x * 0.70710678118654752f); }

__global__ void gelu_forward_kernel(const float* x, float* y, int64_t n) {
  TLM_GRID_STRIDE(i, n) y[i] = 0.5f * x[i] * two_phi(x[i]);
}

__global__ void gelu_backward_kernel(const float* dy, const float* x, float* dx, int64_t n) {
  TLM_GRID_STRIDE(i, n) {
    const float v = x[i];
    dx[i] = dy[i] * (0.5f * two_phi(v) + v * 0.39894228040143268f * expf(-0.5f * v * v));
  }
}

__global__ void tanh_forward_kernel(const float* x, float* y, int64_t n) { TLM_GRID_STRIDE(i, n) y[i] = tanhf(x[i]); }

__global__ void tanh_backward_kernel(const float* dy, const float* y, float* dx, int64_t n) {
  TLM_GRID_STRIDE(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// One block per row: the row's stream is computed once.
__global__ void dropout_kernel(float* x, int cols, float p, float scale, uint64_t key, const uint64_t* row_keys) {
  const uint64_t stream = row_stream(key, row_keys[blockIdx.x]);
  float* row = x + int64_t{blockIdx.x} * cols;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) {
    row[j] = counter_uniform(stream, static_cast<uint64_t>(j)) >= p ? row[j] * scale : 0.0f;
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n) { TLM_GRID_STRIDE(i, n) y[i] += x[i]; }

__global__ void scale_kernel(float* y, float a, int64_t n) { TLM_GRID_STRIDE(i, n) y[i] *= a; }

__global__ void broadcast_rows_kernel(const float* b, float* y, int64_t total, int c) {
  TLM_GRID_STRIDE(i, total) y[i] = b[i % c];
}

__global__ void to_bf16_kernel(const float* x, uint16_t* y, int64_t n) {
  TLM_GRID_STRIDE(i, n) y[i] = kernels::bf16_from_float_bits(__float_as_uint(x[i]));
}

// The same rounding, four values per thread: one 16-byte load, one 8-byte store (the rounding is
// memory-bound, and a step rounds every GEMM operand).
__global__ void to_bf16_by4_kernel(const float4* x, uint2* y, int64_t n4) {
  TLM_GRID_STRIDE(i, n4) {
    const float4 v = x[i];
    const auto r = [](float f) { return static_cast<uint32_t>(kernels::bf16_from_float_bits(__float_as_uint(f))); };
    y[i] = make_uint2(r(v.x) | r(v.y) << 16, r(v.z) | r(v.w) << 16);  // little-endian: the lower half first
  }
}

__global__ void embedding_forward_kernel(const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                                         const float* word, const float* pos, const float* type, float* out,
                                         int64_t total, int c) {
  TLM_GRID_STRIDE(e, total) {
    const int64_t i = e / c, j = e % c;
    const float w = word[int64_t{ids[i]} * c + j];
    const float t = type[int64_t{type_ids ? type_ids[i] : 0} * c + j];
    out[e] = (w + t) + pos[int64_t{positions[i]} * c + j];  // HF adds (word + type) then position
  }
}

__global__ void gather_rows_kernel(const float* src, const int32_t* rows, float* dst, int64_t total, int c) {
  TLM_GRID_STRIDE(e, total) dst[e] = src[int64_t{rows[e / c]} * c + e % c];
}

__global__ void scatter_add_rows_kernel(const float* src, const int32_t* rows, float* dst, int64_t total, int c) {
  TLM_GRID_STRIDE(e, total) dst[int64_t{rows[e / c]} * c + e % c] += src[e];  // rows are distinct
}

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, int64_t n,
                             kernels::AdamWScalars a) {
  TLM_GRID_STRIDE(i, n) {
    const float g = grads[i] * a.grad_scale;
    float p = params[i] * a.decay_factor;
    const float mi = m[i] * a.beta1 + g * a.one_minus_beta1;
    const float vi = v[i] * a.beta2 + a.one_minus_beta2 * g * g;
    const float denom = sqrtf(vi) / a.bias_correction2_sqrt + a.eps;
    p += -a.step_size * (mi / denom);
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

__global__ void iota_kernel(int32_t* out, int n) { TLM_GRID_STRIDE(i, n) out[i] = static_cast<int32_t>(i); }

}  // namespace

void gelu_forward(const float* x, float* y, int64_t n, cudaStream_t s) {
  gelu_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(x, y, n);
}
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t s) {
  gelu_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(dy, x, dx, n);
}
void tanh_forward(const float* x, float* y, int64_t n, cudaStream_t s) {
  tanh_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(x, y, n);
}
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n, cudaStream_t s) {
  tanh_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(dy, y, dx, n);
}
void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys, cudaStream_t s) {
  if (p <= 0.0f || rows == 0) return;
  dropout_kernel<<<rows, kThreads, 0, s>>>(x, cols, p, 1.0f / (1.0f - p), key, row_keys);
}
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t s) {
  add_kernel<<<grid_for(n), kThreads, 0, s>>>(y, x, n);
}
void scale_inplace(float* y, float a, int64_t n, cudaStream_t s) {
  scale_kernel<<<grid_for(n), kThreads, 0, s>>>(y, a, n);
}
void broadcast_rows(const float* b, float* y, int n, int c, cudaStream_t s) {
  const int64_t total = int64_t{n} * c;
  broadcast_rows_kernel<<<grid_for(total), kThreads, 0, s>>>(b, y, total, c);
}
void to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t s) {
  // By fours where both pointers are aligned for it (an operand may start inside a buffer), the
  // rest one by one.
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 8 == 0;
  const int64_t n4 = aligned ? n / 4 : 0;
  if (n4 > 0) {
    to_bf16_by4_kernel<<<grid_for(n4), kThreads, 0, s>>>(reinterpret_cast<const float4*>(x),
                                                         reinterpret_cast<uint2*>(y), n4);
  }
  if (n > 4 * n4) to_bf16_kernel<<<grid_for(n - 4 * n4), kThreads, 0, s>>>(x + 4 * n4, y + 4 * n4, n - 4 * n4);
}
void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                       const float* pos, const float* type, float* out, int n, int c, cudaStream_t s) {
  const int64_t total = int64_t{n} * c;
  embedding_forward_kernel<<<grid_for(total), kThreads, 0, s>>>(ids, positions, type_ids, word, pos, type, out, total,
                                                                c);
}
void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c, cudaStream_t s) {
  const int64_t total = int64_t{count} * c;
  if (total > 0) gather_rows_kernel<<<grid_for(total), kThreads, 0, s>>>(src, rows, dst, total, c);
}
void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c, cudaStream_t s) {
  const int64_t total = int64_t{count} * c;
  if (total > 0) scatter_add_rows_kernel<<<grid_for(total), kThreads, 0, s>>>(src, rows, dst, total, c);
}
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const kernels::AdamWScalars& a,
                  cudaStream_t s) {
  adamw_kernel<<<grid_for(n), kThreads, 0, s>>>(params, grads, m, v, n, a);
}
void iota(int32_t* out, int n, cudaStream_t s) { iota_kernel<<<grid_for(n), kThreads, 0, s>>>(out, n); }

}  // namespace tlm::cuda
