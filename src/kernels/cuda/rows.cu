// Row kernels of the CUDA back end: one thread block per row, sums in double as the CPU's.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "tlm/rng.h"

namespace tlm::cuda {

namespace {

// y (c) = LayerNorm(x (c)) with its mean and 1/std: two passes in double (kernels/cpu/row_ops.h).
// Each thread reads only the columns it wrote, so a row just written by the caller needs no sync.
__device__ void layernorm_row(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                              int c, float eps, double* shared) {
  double s = 0;
  for (int j = threadIdx.x; j < c; j += blockDim.x) s += x[j];
  const double m = block_sum(s, shared) / c;
  double v = 0;
  for (int j = threadIdx.x; j < c; j += blockDim.x) v += (x[j] - m) * (x[j] - m);
  v = block_sum(v, shared);
  const float r = static_cast<float>(1.0 / sqrt(v / c + eps));
  const float mf = static_cast<float>(m);
  for (int j = threadIdx.x; j < c; j += blockDim.x) y[j] = (x[j] - mf) * r * gamma[j] + beta[j];
  if (threadIdx.x == 0) {
    *mean = mf;
    *rstd = r;
  }
}

__global__ void layernorm_kernel(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                                 float* rstd, int c, float eps) {
  __shared__ double shared[32];
  const int64_t at = int64_t{blockIdx.x} * c;
  layernorm_row(x + at, gamma, beta, y + at, mean + blockIdx.x, rstd + blockIdx.x, c, eps, shared);
}

__global__ void dropout_residual_layernorm_kernel(float* x, const float* resid, const float* gamma, const float* beta,
                                                  float* y, float* mean, float* rstd, int c, float eps, float p,
                                                  float scale, uint64_t key, const uint64_t* row_keys) {
  __shared__ double shared[32];
  const int64_t at = int64_t{blockIdx.x} * c;
  float* xi = x + at;
  const float* ri = resid + at;
  const uint64_t stream = p > 0.0f ? row_stream(key, row_keys[blockIdx.x]) : 0;
  for (int j = threadIdx.x; j < c; j += blockDim.x) {
    float v = xi[j];
    if (p > 0.0f) v = counter_uniform(stream, static_cast<uint64_t>(j)) >= p ? v * scale : 0.0f;
    xi[j] = v + ri[j];
  }
  layernorm_row(xi, gamma, beta, y + at, mean + blockIdx.x, rstd + blockIdx.x, c, eps, shared);
}

__global__ void layernorm_backward_dx_kernel(const float* dy, const float* x, const float* mean, const float* rstd,
                                             const float* gamma, float* dx, int c) {
  __shared__ double shared[32];
  const int64_t at = int64_t{blockIdx.x} * c;
  const float* xi = x + at;
  const float* dyi = dy + at;
  const float m = mean[blockIdx.x], r = rstd[blockIdx.x];
  double sum_g = 0, sum_gx = 0;  // mean(dxhat), mean(dxhat * xhat)
  for (int j = threadIdx.x; j < c; j += blockDim.x) {
    const float g = dyi[j] * gamma[j];
    sum_g += g;
    sum_gx += g * ((xi[j] - m) * r);
  }
  sum_g = block_sum(sum_g, shared);
  sum_gx = block_sum(sum_gx, shared);
  const float mg = static_cast<float>(sum_g / c), mgx = static_cast<float>(sum_gx / c);
  for (int j = threadIdx.x; j < c; j += blockDim.x) {
    const float xhat = (xi[j] - m) * r;
    dx[at + j] = r * (dyi[j] * gamma[j] - mg - xhat * mgx);
  }
}

// The row's log-sum-exp as the CPU's: its max, then the sum of exponentials in double.
__device__ double row_logsumexp(const float* row, int k, float* fshared, double* dshared) {
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < k; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = block_max(mx, fshared);
  double sum = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) sum += expf(row[j] - mx);
  sum = block_sum(sum, dshared);
  return mx + log(sum);
}

__global__ void softmax_cross_entropy_kernel(const float* logits, const int32_t* labels, float* dlogits, float scale,
                                             int k, double* row_loss) {
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  const int64_t at = int64_t{blockIdx.x} * k;
  const float* row = logits + at;
  float* drow = dlogits ? dlogits + at : nullptr;
  const int label = labels[blockIdx.x];
  if (label < 0) {  // ignore_index (-100 in HF)
    if (drow) {
      for (int j = threadIdx.x; j < k; j += blockDim.x) drow[j] = 0.0f;
    }
    if (threadIdx.x == 0) row_loss[blockIdx.x] = 0;
    return;
  }
  const double lse = row_logsumexp(row, k, fshared, dshared);
  const float label_logit = row[label];  // read before dlogits (which may alias logits) is written
  __syncthreads();
  if (threadIdx.x == 0) row_loss[blockIdx.x] = lse - label_logit;
  if (drow) {
    const float shift = static_cast<float>(lse);
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      const float d = scale * expf(row[j] - shift);
      drow[j] = j == label ? d - scale : d;
    }
  }
}

__global__ void softmax_rows_kernel(const float* logits, float* probs, int k) {
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  const int64_t at = int64_t{blockIdx.x} * k;
  const float shift = static_cast<float>(row_logsumexp(logits + at, k, fshared, dshared));
  for (int j = threadIdx.x; j < k; j += blockDim.x) probs[at + j] = expf(logits[at + j] - shift);
}

}  // namespace

void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int n,
                       int c, float eps, cudaStream_t s) {
  if (n > 0) layernorm_kernel<<<n, kThreads, 0, s>>>(x, gamma, beta, y, mean, rstd, c, eps);
}

void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                        float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                        const uint64_t* row_keys, cudaStream_t s) {
  const float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  if (n > 0) {
    dropout_residual_layernorm_kernel<<<n, kThreads, 0, s>>>(x, resid, gamma, beta, y, mean, rstd, c, eps, p, scale,
                                                             key, row_keys);
  }
}

void layernorm_backward_dx(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                           float* dx, int n, int c, cudaStream_t s) {
  if (n > 0) layernorm_backward_dx_kernel<<<n, kThreads, 0, s>>>(dy, x, mean, rstd, gamma, dx, c);
}

void softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m, int k,
                           double* row_loss, cudaStream_t s) {
  if (m > 0) softmax_cross_entropy_kernel<<<m, kThreads, 0, s>>>(logits, labels, dlogits, scale, k, row_loss);
}

void softmax_rows(const float* logits, float* probs, int m, int k, cudaStream_t s) {
  if (m > 0) softmax_rows_kernel<<<m, kThreads, 0, s>>>(logits, probs, k);
}

}  // namespace tlm::cuda
