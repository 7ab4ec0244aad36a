// The CUDA kernels of the back end (kernels/cuda/*.cu), launched on a stream. Each mirrors the
// op of kernels/kernels.h with the same name and contract (shapes, accumulate vs overwrite,
// dropout keying); every pointer is device memory unless it says host. Nothing here synchronises
// or allocates: the back end (cuda_backend.cpp) owns the work spaces and checks launch errors.
// Every reduction sums in a fixed order (no atomics), so a result repeats bit for bit on one GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace tlm::cuda {

// ---- elementwise (elementwise.cu) ----
void gelu_forward(const float* x, float* y, int64_t n, cudaStream_t s);
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n, cudaStream_t s);
void tanh_forward(const float* x, float* y, int64_t n, cudaStream_t s);
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n, cudaStream_t s);
void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys, cudaStream_t s);
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t s);
void scale_inplace(float* y, float a, int64_t n, cudaStream_t s);
// y (n, c): every row = b (c)
void broadcast_rows(const float* b, float* y, int n, int c, cudaStream_t s);
// x (n) -> y (n) bf16 bits, round to nearest even (kernels/bf16_bits.h, the CPU's rule)
void to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t s);
void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                       const float* pos, const float* type, float* out, int n, int c, cudaStream_t s);
void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c, cudaStream_t s);
void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c, cudaStream_t s);
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const kernels::AdamWScalars& a,
                  cudaStream_t s);
// out[i] = i (n)
void iota(int32_t* out, int n, cudaStream_t s);

// ---- rows (rows.cu): one thread block per row ----
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int n,
                       int c, float eps, cudaStream_t s);
void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                        float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                        const uint64_t* row_keys, cudaStream_t s);
// dx (n, c) overwritten (the parameter gradients: layernorm_param_grads)
void layernorm_backward_dx(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                           float* dx, int n, int c, cudaStream_t s);
// row_loss (m): each row's loss in double (0 for an ignored label); dlogits as kernels.h
void softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m, int k,
                           double* row_loss, cudaStream_t s);
void softmax_rows(const float* logits, float* probs, int m, int k, cudaStream_t s);

// ---- column and whole-buffer reductions (reduce.cu) ----
// Work space (floats) of the column sums below, for n rows of c columns.
int64_t column_sums_work(int n, int c);
// dst (c) += sum over rows of x (n, c)
void column_sums(const float* x, float* dst, int n, int c, float* work, cudaStream_t s);
// dgamma (c) += sum_i dy * xhat, dbeta (c) += sum_i dy; work: 2 * column_sums_work(n, c) floats
void layernorm_param_grads(const float* dy, const float* x, const float* mean, const float* rstd, float* dgamma,
                           float* dbeta, int n, int c, float* work, cudaStream_t s);
// Work space (doubles) of sum_squares and (int64) of first_nonfinite for n values.
int64_t reduce_work(int64_t n);
// *out (device, one double) = sum of x^2 in double
void sum_squares(const float* x, int64_t n, double* work, double* out, cudaStream_t s);
// *out (device) = sum of x (n) in double, in index order
void sum_doubles(const double* x, int64_t n, double* out, cudaStream_t s);
// *out (device) = the index of the first NaN or inf of x (n), or -1
void first_nonfinite(const float* x, int64_t n, long long* work, long long* out, cudaStream_t s);

// ---- row scatter-add with repeated indices (index_add.cu) ----
// dst row index[i] += src row i for i < n, index values in [0, 2^index_bits); the rows of one
// index are summed in a fixed order. Work space in bytes. Returns the sort's status (CUB reports
// its errors by value, not through cudaGetLastError).
size_t index_add_work(int n, int index_bits);
cudaError_t index_add_rows(const float* src, const int32_t* index, float* dst, int n, int c, int index_bits, void* work,
                           size_t work_bytes, cudaStream_t s);

// ---- attention over packed sequences (attention.cu); shape as kernels.h, offsets on the device ----
// Work space (bytes) of forward or backward for a shape (uses its host geometry; backward keeps
// dS, up to heads x q_rows x max_kv_len floats).
size_t attention_work(const kernels::AttentionShape& a, bool backward);
// The most shared memory (bytes) a block of the attention kernels asks for at this shape.
size_t attention_shared_bytes(const kernels::AttentionShape& a);
void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx,
                       const kernels::AttentionShape& a, void* work, cudaStream_t s);
void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, const kernels::AttentionShape& a, void* work, cudaStream_t s);

}  // namespace tlm::cuda
