// The CUDA back end: device memory from the stream-ordered allocator, every op issued on one
// stream, GEMMs in cuBLAS (fp32 without TF32; bf16: operands rounded to bf16, fp32 sums, as the
// CPU's bf16), the rest in kernels/cuda/*.cu. Reductions that decide results use no atomics, so a
// run repeats bit for bit on one GPU. The convolutional front-end is not here: it is refused.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "tlm/check.h"

namespace tlm {

namespace {

namespace cu = tlm::cuda;
namespace k = tlm::kernels;

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw Error(fmt::format("CUDA {} failed: {}", what, cudaGetErrorString(rc)));
}

void check_cublas(cublasStatus_t rc, const char* what) {
  if (rc != CUBLAS_STATUS_SUCCESS) {
    throw Error(fmt::format("cuBLAS {} failed: {} ({})", what, cublasGetStatusName(rc), cublasGetStatusString(rc)));
  }
}

// A launch's own errors (a bad configuration) show at once; faults inside a kernel show at the
// next synchronising call, which checks them too.
void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

const char* kNoConv =
    "the convolutional front-end runs on the CPU only (--device cpu): the CUDA back end has no convolution or "
    "BatchNorm kernels yet";

// A device allocation that only grows, freed and taken again in stream order.
class Workspace {
 public:
  void* get(size_t bytes, cudaStream_t s) {
    if (bytes > bytes_) {
      const size_t grown = std::max(bytes, bytes_ + bytes_ / 2);
      if (p_) cudaFreeAsync(p_, s);
      p_ = nullptr;
      bytes_ = 0;
      check_cuda(cudaMallocAsync(&p_, grown, s), "work space allocation");
      bytes_ = grown;
    }
    return p_;
  }
  void release(cudaStream_t s) {
    if (p_) cudaFreeAsync(p_, s);
    p_ = nullptr;
    bytes_ = 0;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int index, Precision precision) : index_(index), precision_(precision) {
    check_cuda(cudaSetDevice(index_), "device selection");
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, index_), "device query");
    name_ = prop.name;
    shared_per_block_ = prop.sharedMemPerBlockOptin;
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream creation");
    check_cublas(cublasCreate(&blas_), "handle creation");
    check_cublas(cublasSetStream(blas_, stream_), "stream binding");
    // Default math: fp32 GEMMs stay IEEE fp32 (TF32 only under CUBLAS_TF32_TENSOR_OP_MATH, which
    // tlm never sets), bf16 GEMMs use tensor cores (pedantic math would forbid them).
    check_cublas(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH), "math mode");
    // Freed device memory stays in the stream-ordered pool instead of going back to the driver at
    // every synchronisation (a step allocates and frees work space).
    cudaMemPool_t pool = nullptr;
    check_cuda(cudaDeviceGetDefaultMemPool(&pool, index_), "memory pool");
    uint64_t keep = UINT64_MAX;
    check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "memory pool");
  }
  ~CudaBackend() override {
    cudaSetDevice(index_);
    for (Workspace* w : {&work_, &bf16_a_, &bf16_b_}) w->release(stream_);
    cudaStreamSynchronize(stream_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return {DeviceKind::kCuda, index_}; }
  Precision precision() const override { return precision_; }
  int threads() const override { return 1; }
  std::string describe() const override {
    int version = 0;
    cublasGetVersion(blas_, &version);
    return fmt::format("cuda:{} {} ({}; cuBLAS {}.{}.{})", index_, precision_name(precision_), name_, version / 10000,
                       version / 100 % 100, version % 100);
  }

  // ---- memory and the stream ----
  void* allocate(size_t bytes) override {
    const cudaStream_t s = on();
    void* p = nullptr;
    const cudaError_t rc = cudaMallocAsync(&p, std::max<size_t>(bytes, 1), s);
    if (rc == cudaErrorMemoryAllocation) {
      throw Error(fmt::format("out of GPU memory allocating {} bytes on cuda:{}", bytes, index_));
    }
    check_cuda(rc, "allocation");
    check_cuda(cudaMemsetAsync(p, 0, bytes, s), "zero fill");
    return p;
  }
  // Never throws: it runs in destructors, also while an earlier GPU error unwinds the stack (CUDA
  // errors are sticky, so this call would fail again and end the program instead of reporting).
  void deallocate(void* p) override {
    cudaSetDevice(index_);
    cudaFreeAsync(p, stream_);
  }
  void* allocate_host(size_t bytes) override {
    on();
    void* p = nullptr;
    check_cuda(cudaMallocHost(&p, std::max<size_t>(bytes, 1)), "pinned host allocation");
    return p;
  }
  void deallocate_host(void* p) override {
    on();
    check_cuda(cudaFreeHost(p), "pinned host release");
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, on()), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    const cudaStream_t s = on();
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "download");
    check_cuda(cudaStreamSynchronize(s), "download");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, on()), "device copy");
  }
  void fill_zero(void* dst, size_t bytes) override { check_cuda(cudaMemsetAsync(dst, 0, bytes, on()), "zero fill"); }
  void synchronize() override { check_cuda(cudaStreamSynchronize(on()), "stream"); }

  // ---- the model's ops ----
  void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) override {
    const cudaStream_t s = on();
    if (b) {
      cu::broadcast_rows(b, y, n, out, s);
      check_launch("bias");
    }
    gemm(false, true, n, out, in, x, in, w, in, y, out, b ? 1.0f : 0.0f);  // y (n, out) (+)= x w^T
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                       int out) override {
    if (dx) gemm(false, false, n, in, out, dy, out, w, in, dx, in, 0.0f);  // dx (n, in) = dy (n, out) w (out, in)
    gemm(true, false, out, in, n, dy, out, x, in, dw, in, 1.0f);           // dw (out, in) += dy^T x
    if (db) {
      const cudaStream_t s = on();
      cu::column_sums(dy, db, n, out, work<float>(cu::column_sums_work(n, out)), s);
      check_launch("bias gradient");
    }
  }
  void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                         int n, int c, float eps) override {
    cu::layernorm_forward(x, gamma, beta, y, mean, rstd, n, c, eps, on());
    check_launch("layernorm");
  }
  void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                          float* dx, float* dgamma, float* dbeta, int n, int c) override {
    const cudaStream_t s = on();
    // The parameter gradients first: dx may be written over dy's memory by a caller's aliasing.
    cu::layernorm_param_grads(dy, x, mean, rstd, dgamma, dbeta, n, c, work<float>(2 * cu::column_sums_work(n, c)), s);
    check_launch("layernorm parameter gradients");
    cu::layernorm_backward_dx(dy, x, mean, rstd, gamma, dx, n, c, s);
    check_launch("layernorm backward");
  }
  void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                          float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                          const uint64_t* row_keys) override {
    cu::dropout_residual_layernorm_forward(x, resid, gamma, beta, y, mean, rstd, n, c, eps, p, key, row_keys, on());
    check_launch("dropout + residual + layernorm");
  }
  void gelu_forward(const float* x, float* y, int64_t n) override {
    cu::gelu_forward(x, y, n, on());
    check_launch("gelu");
  }
  void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) override {
    cu::gelu_backward(dy, x, dx, n, on());
    check_launch("gelu backward");
  }
  void tanh_forward(const float* x, float* y, int64_t n) override {
    cu::tanh_forward(x, y, n, on());
    check_launch("tanh");
  }
  void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) override {
    cu::tanh_backward(dy, y, dx, n, on());
    check_launch("tanh backward");
  }
  void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys) override {
    cu::dropout_apply(x, rows, cols, p, key, row_keys, on());
    check_launch("dropout");
  }
  void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                         const float* pos, const float* type, float* out, int n, int c) override {
    cu::embedding_forward(ids, positions, type_ids, word, pos, type, out, n, c, on());
    check_launch("embeddings");
  }
  void embedding_backward(const float* dout, const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                          float* dword, float* dpos, float* dtype, int n, int c) override {
    const cudaStream_t s = on();
    // Ids are non-negative int32: the sort looks at their low 31 bits.
    const size_t bytes = cu::index_add_work(n, 31);
    check_cuda(cu::index_add_rows(dout, ids, dword, n, c, 31, work<char>(bytes), bytes, s), "word embedding sort");
    check_launch("word embedding gradient");
    check_cuda(cu::index_add_rows(dout, positions, dpos, n, c, 31, work<char>(bytes), bytes, s),
               "position embedding sort");
    check_launch("position embedding gradient");
    if (type_ids) {
      check_cuda(cu::index_add_rows(dout, type_ids, dtype, n, c, 31, work<char>(bytes), bytes, s),
                 "type embedding sort");
    } else {  // every token has type 0
      cu::column_sums(dout, dtype, n, c, work<float>(cu::column_sums_work(n, c)), s);
    }
    check_launch("type embedding gradient");
  }
  int64_t attention_scratch_size(int) const override { return 0; }  // the back end's own work space instead
  void attention_forward(const float* q, const float* kk, const float* v, float* probs, float* ctx, float*,
                         const k::AttentionShape& shape) override {
    check_geometry(shape);
    const cudaStream_t s = on();
    const size_t bytes = cu::attention_work(shape, false);
    cu::attention_forward(q, kk, v, probs, ctx, shape, work<char>(bytes), s);
    check_launch("attention");
  }
  void attention_backward(const float* dctx, const float* q, const float* kk, const float* v, const float* probs,
                          float* dq, float* dk, float* dv, float*, const k::AttentionShape& shape) override {
    check_geometry(shape);
    const cudaStream_t s = on();
    const size_t bytes = cu::attention_work(shape, true);
    cu::attention_backward(dctx, q, kk, v, probs, dq, dk, dv, shape, work<char>(bytes), s);
    check_launch("attention backward");
  }
  std::string lacks(Feature feature) const override { return feature == Feature::kConvFrontEnd ? kNoConv : ""; }
  int64_t conv2d_scratch_size(const k::ConvShape&) const override { throw Error(kNoConv); }
  void conv2d_forward(const float*, const float*, const float*, float*, float*, const k::ConvShape&) override {
    throw Error(kNoConv);
  }
  void conv2d_backward(const float*, const float*, const float*, float*, float*, float*, float*,
                       const k::ConvShape&) override {
    throw Error(kNoConv);
  }
  void batchnorm_forward_train(const float*, const float*, const float*, float*, float*, float*, float*, float*,
                               int64_t, int, float, float) override {
    throw Error(kNoConv);
  }
  void batchnorm_forward_eval(const float*, const float*, const float*, const float*, const float*, float*, int64_t,
                              int, float) override {
    throw Error(kNoConv);
  }
  void batchnorm_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*,
                          int64_t, int) override {
    throw Error(kNoConv);
  }
  double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m,
                               int kk) override {
    const cudaStream_t s = on();
    auto* losses = work<double>(static_cast<int64_t>(m) + 1);  // (m) per row, then the sum
    cu::softmax_cross_entropy(logits, labels, dlogits, scale, m, kk, losses, s);
    check_launch("softmax cross-entropy");
    cu::sum_doubles(losses, m, losses + m, s);
    check_launch("loss sum");
    double total = 0;
    download(&total, losses + m, sizeof(double));
    return total;
  }
  void softmax_rows(const float* logits, float* probs, int m, int kk) override {
    cu::softmax_rows(logits, probs, m, kk, on());
    check_launch("softmax");
  }
  void add_inplace(float* y, const float* x, int64_t n) override {
    cu::add_inplace(y, x, n, on());
    check_launch("add");
  }
  void scale_inplace(float* y, float a, int64_t n) override {
    cu::scale_inplace(y, a, n, on());
    check_launch("scale");
  }
  double sum_squares(const float* x, int64_t n) override {
    const cudaStream_t s = on();
    const int64_t blocks = cu::reduce_work(n);
    auto* partial = work<double>(blocks + 1);  // (blocks) partial sums, then the total
    cu::sum_squares(x, n, partial, partial + blocks, s);
    check_launch("sum of squares");
    double total = 0;
    download(&total, partial + blocks, sizeof(double));
    return total;
  }

  // ---- ops added by the seam ----
  void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    cu::gather_rows(src, rows, dst, count, c, on());
    check_launch("row gather");
  }
  void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    cu::scatter_add_rows(src, rows, dst, count, c, on());
    check_launch("row scatter-add");
  }
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& a) override {
    cu::adamw_update(params, grads, m, v, n, a, on());
    check_launch("AdamW");
  }
  int64_t first_nonfinite(const float* x, int64_t n) override {
    const cudaStream_t s = on();
    const int64_t blocks = cu::reduce_work(n);
    auto* partial = work<long long>(blocks + 1);  // (blocks) first indices, then the first of all
    cu::first_nonfinite(x, n, partial, partial + blocks, s);
    check_launch("finite check");
    long long first = -1;
    download(&first, partial + blocks, sizeof(long long));
    return first;
  }

  double gemm_ceiling_gflops() override;

 private:
  // Makes this back end's device current for the calling thread; returns its stream.
  cudaStream_t on() const {
    check_cuda(cudaSetDevice(index_), "device selection");
    return stream_;
  }
  // The shared work space as `count` T (valid until the next op: ops run in stream order).
  template <typename T>
  T* work(int64_t count) {
    return static_cast<T*>(work_.get(sizeof(T) * static_cast<size_t>(std::max<int64_t>(count, 1)), stream_));
  }
  void check_geometry(const k::AttentionShape& a) const {
    // A block keeps its tile's rows of scores in shared memory: at least one of max_kv_len floats.
    TLM_CHECK(a.max_kv_len >= 1 && a.max_kv_len <= 4096,
              "attention over sequences of up to {} tokens: the CUDA kernels take 1 to 4096", a.max_kv_len);
    TLM_CHECK(a.q_rows >= 0 && a.kv_rows >= a.num_seqs,
              "attention: the shape's host geometry is missing or wrong ({} query rows, {} key rows, {} sequences)",
              a.q_rows, a.kv_rows, a.num_seqs);
    const size_t shared = cu::attention_shared_bytes(a);
    TLM_CHECK(shared <= shared_per_block_,
              "attention with {} heads of width {} over sequences of up to {} tokens needs {} bytes of shared memory "
              "per block; {} has {}",
              a.heads, a.head_dim, a.max_kv_len, shared, name_, shared_per_block_);
  }
  // The floats a row-major (rows, cols) matrix with row stride ld spans.
  static int64_t stored_extent(int rows, int cols, int ld) { return static_cast<int64_t>(rows - 1) * ld + cols; }
  // Row-major C (m, n) = alpha op(A) op(B) + beta C with op(A) (m, k) and op(B) (k, n); lda, ldb,
  // ldc the row strides of A, B, C as stored. cuBLAS is column-major: it computes C^T = op(B)^T op(A)^T.
  void gemm(bool trans_a, bool trans_b, int m, int n, int kk, const float* a, int lda, const float* b, int ldb,
            float* c, int ldc, float beta) {
    if (m == 0 || n == 0) return;
    const cudaStream_t s = on();
    const float alpha = 1.0f;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (precision_ == Precision::kFp32) {
      check_cublas(cublasSgemm(blas_, op_b, op_a, n, m, kk, &alpha, b, ldb, a, lda, &beta, c, ldc), "sgemm");
      return;
    }
    // bf16: both operands rounded to bf16 (the stored extents), the products summed in fp32.
    const int64_t a_count = stored_extent(trans_a ? kk : m, trans_a ? m : kk, lda);
    const int64_t b_count = stored_extent(trans_b ? n : kk, trans_b ? kk : n, ldb);
    auto* a16 = static_cast<uint16_t*>(bf16_a_.get(sizeof(uint16_t) * static_cast<size_t>(a_count), s));
    auto* b16 = static_cast<uint16_t*>(bf16_b_.get(sizeof(uint16_t) * static_cast<size_t>(b_count), s));
    cu::to_bf16(a, a16, a_count, s);
    cu::to_bf16(b, b16, b_count, s);
    check_launch("bf16 rounding");
    check_cublas(cublasGemmEx(blas_, op_b, op_a, n, m, kk, &alpha, b16, CUDA_R_16BF, ldb, a16, CUDA_R_16BF, lda, &beta,
                              c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "bf16 gemm");
  }

  int index_;
  Precision precision_;
  std::string name_;
  size_t shared_per_block_ = 0;  // the most shared memory a block may ask for (opting in)
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  Workspace work_, bf16_a_, bf16_b_;
};

double CudaBackend::gemm_ceiling_gflops() {
  // A square product of 8192 (1.1 TFLOP) on patterned operands (zeros would flatter the tensor
  // cores' power draw), best of five after a warm-up, timed by CUDA events: the GEMM alone (bf16:
  // operands rounded once beforehand, as the ceiling of what a step's GEMMs can reach).
  constexpr int kN = 8192;
  const size_t count = static_cast<size_t>(kN) * kN;
  const cudaStream_t s = on();
  std::vector<float> row(kN);
  for (int j = 0; j < kN; ++j) row[j] = static_cast<float>((j * 37) % 101) / 101.0f - 0.5f;
  DeviceBuffer<float> pattern(*this, kN), a(*this, static_cast<int64_t>(count)), c(*this, static_cast<int64_t>(count));
  pattern.upload(row.data(), kN);
  cu::broadcast_rows(pattern.data(), a.data(), kN, kN, s);
  check_launch("pattern");
  DeviceBuffer<uint16_t> a16(*this, precision_ == Precision::kBf16 ? static_cast<int64_t>(count) : 0);
  if (precision_ == Precision::kBf16) {
    cu::to_bf16(a.data(), a16.data(), static_cast<int64_t>(count), s);
    check_launch("bf16 rounding");
  }
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "event");
  check_cuda(cudaEventCreate(&stop), "event");
  float best_ms = 1e30f;
  for (int rep = 0; rep < 6; ++rep) {
    check_cuda(cudaEventRecord(start, s), "event");
    if (precision_ == Precision::kFp32) {
      check_cublas(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, kN, kN, kN, &alpha, a.data(), kN, a.data(), kN, &beta,
                               c.data(), kN),
                   "sgemm");
    } else {
      check_cublas(
          cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, kN, kN, kN, &alpha, a16.data(), CUDA_R_16BF, kN, a16.data(),
                       CUDA_R_16BF, kN, &beta, c.data(), CUDA_R_32F, kN, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "bf16 gemm");
    }
    check_cuda(cudaEventRecord(stop, s), "event");
    check_cuda(cudaEventSynchronize(stop), "event");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "event");
    if (rep > 0) best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 2.0 * kN * kN * static_cast<double>(kN) / (best_ms * 1e-3) / 1e9;
}

// The number of GPUs, or a message saying why none can be used.
std::pair<int, std::string> gpus() {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) return {0, cudaGetErrorString(rc)};
  if (count == 0) return {0, "no CUDA device found"};
  return {count, ""};
}

std::unique_ptr<Backend> make_cuda(const Device& device, Precision precision) {
  const auto [count, why] = gpus();
  TLM_CHECK(count > 0, "--device {}: no usable CUDA GPU here ({})", device.name(), why);
  TLM_CHECK(device.index < count, "--device {}: this machine has {} CUDA GPU{} (cuda:0 to cuda:{})", device.name(),
            count, count == 1 ? "" : "s", count - 1);
  return std::make_unique<CudaBackend>(device.index, precision);
}

std::pair<Precision, std::string> cuda_auto_precision(const Device& device) {
  const auto [count, why] = gpus();
  if (count == 0) return {Precision::kFp32, fmt::format("auto precision: fp32 ({})", why)};
  if (device.index >= count) {
    return {Precision::kFp32, fmt::format("auto precision: fp32 (no {} here: {} GPUs)", device.name(), count)};
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device.index), "device query");
  if (prop.major >= 8) {
    return {Precision::kBf16, fmt::format("auto precision: bf16 ({} computes bf16 on tensor cores, sm_{}{})", prop.name,
                                          prop.major, prop.minor)};
  }
  return {Precision::kFp32, fmt::format("auto precision: fp32 ({} is sm_{}{}, without bf16 tensor cores)", prop.name,
                                        prop.major, prop.minor)};
}

}  // namespace

BackendEntry cuda_backend_entry() {
  return {DeviceKind::kCuda, &make_cuda, &cuda_auto_precision, [] { return gpus().first; }};
}

}  // namespace tlm
