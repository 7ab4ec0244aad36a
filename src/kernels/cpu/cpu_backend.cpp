// The CPU back end: host memory, a stream that runs every op at once, the kernels of kernels/cpu/.
#include "kernels/cpu/cpu_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "kernels/cpu/conv_cpu.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm_cpu.h"
#include "kernels/cpu/page_memory.h"
#include "kernels/cpu/vec_math.h"
#include "tlm/check.h"

namespace tlm {

namespace k = kernels;

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(Precision precision, k::GemmMode gemm, bool absorb)
      : precision_(precision), gemm_(gemm), absorb_(absorb) {}

  Device device() const override { return {}; }
  Precision precision() const override { return precision_; }
  int threads() const override { return omp_get_max_threads(); }
  std::string describe() const override {
    return fmt::format("cpu {} (GEMM: {}; row kernels on {} floats; {} threads)", precision_name(precision_),
                       k::gemm_mode_name(gemm_.mode()), k::vector_floats(), threads());
  }

  void* allocate(size_t bytes) override {
    // 64-byte aligned for AVX-512 loads (huge pages for large buffers); zero-filled as the
    // contract says.
    void* p = nullptr;
    try {
      p = k::allocate_pages(bytes);
    } catch (const std::bad_alloc&) {
      TLM_FAIL("out of memory allocating {} bytes", bytes);
    }
    std::memset(p, 0, bytes);
    return p;
  }
  void deallocate(void* p) override { k::free_pages(p); }
  void* allocate_host(size_t bytes) override { return allocate(bytes); }
  void deallocate_host(void* p) override { k::free_pages(p); }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill_zero(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void synchronize() override {}

  void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) override {
    k::linear_forward(gemm_, x, w, b, y, n, in, out);
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                       int out) override {
    k::linear_backward(gemm_, dy, x, w, dx, dw, db, n, in, out);
  }
  void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                         int n, int c, float eps) override {
    k::layernorm_forward(x, gamma, beta, y, mean, rstd, n, c, eps);
  }
  void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                          float* dx, float* dgamma, float* dbeta, int n, int c) override {
    k::layernorm_backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, n, c);
  }
  void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                          float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                          const uint64_t* row_keys) override {
    k::dropout_residual_layernorm_forward(x, resid, gamma, beta, y, mean, rstd, n, c, eps, p, key, row_keys);
  }
  void gelu_forward(const float* x, float* y, int64_t n) override { k::gelu_forward(x, y, n); }
  void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) override { k::gelu_backward(dy, x, dx, n); }
  void tanh_forward(const float* x, float* y, int64_t n) override { k::tanh_forward(x, y, n); }
  void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) override { k::tanh_backward(dy, y, dx, n); }
  void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys) override {
    k::dropout_apply(x, rows, cols, p, key, row_keys);
  }
  void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                         const float* pos, const float* type, float* out, int n, int c) override {
    k::embedding_forward(ids, positions, type_ids, word, pos, type, out, n, c);
  }
  void embedding_backward(const float* dout, const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                          float* dword, float* dpos, float* dtype, int n, int c) override {
    k::embedding_backward(dout, ids, positions, type_ids, dword, dpos, dtype, n, c);
  }
  int64_t attention_scratch_size(int max_len) const override { return k::attention_scratch_size(max_len, threads()); }
  void attention_forward(const float* q, const float* kk, const float* v, float* probs, float* ctx, float* scratch,
                         const k::AttentionShape& shape) override {
    k::attention_forward(q, kk, v, probs, ctx, scratch, shape);
  }
  void attention_backward(const float* dctx, const float* q, const float* kk, const float* v, const float* probs,
                          float* dq, float* dk, float* dv, float* scratch, const k::AttentionShape& shape) override {
    k::attention_backward(dctx, q, kk, v, probs, dq, dk, dv, scratch, shape);
  }
  bool absorbs_attention() const override { return absorb_; }
  int64_t absorbed_attention_saved_size(int q_rows, int heads, int c) const override {
    return k::absorbed_attention_saved_size(q_rows, heads, c);
  }
  int64_t absorbed_attention_scratch_size(int q_rows, int max_q_len, int max_len, int heads, int c) const override {
    return k::absorbed_attention_scratch_size(q_rows, max_q_len, max_len, heads, c, threads());
  }
  void absorbed_attention_forward(const float* q, const float* x, const float* wk, const float* wv, const float* bv,
                                  float* probs, float* saved, float* ctx, float* scratch,
                                  const k::AttentionShape& shape) override {
    k::absorbed_attention_forward(q, x, wk, wv, bv, probs, saved, ctx, scratch, shape);
  }
  void absorbed_attention_backward(const float* dctx, const float* q, const float* x, const float* wk, const float* wv,
                                   const float* bv, const float* probs, const float* saved, float* dq, float* dx,
                                   float* dwk, float* dwv, float* dbv, float* scratch,
                                   const k::AttentionShape& shape) override {
    k::absorbed_attention_backward(dctx, q, x, wk, wv, bv, probs, saved, dq, dx, dwk, dwv, dbv, scratch, shape);
  }
  int64_t conv2d_scratch_size(const k::ConvShape& shape) const override { return k::conv2d_scratch_size(shape); }
  void conv2d_forward(const float* x, const float* w, const float* b, float* y, float* scratch,
                      const k::ConvShape& shape) override {
    k::conv2d_forward(gemm_, x, w, b, y, scratch, shape);
  }
  void conv2d_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, float* scratch,
                       const k::ConvShape& shape) override {
    k::conv2d_backward(gemm_, dy, x, w, dx, dw, db, scratch, shape);
  }
  void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                               float* rstd, float* running_mean, float* running_var, int64_t pixels, int ch, float eps,
                               float momentum) override {
    k::batchnorm_forward_train(x, gamma, beta, y, mean, rstd, running_mean, running_var, pixels, ch, eps, momentum);
  }
  void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, const float* running_mean,
                              const float* running_var, float* y, int64_t pixels, int ch, float eps) override {
    k::batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, y, pixels, ch, eps);
  }
  void batchnorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                          float* dx, float* dgamma, float* dbeta, int64_t pixels, int ch) override {
    k::batchnorm_backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, pixels, ch);
  }
  double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m,
                               int kk) override {
    return k::softmax_cross_entropy(logits, labels, dlogits, scale, m, kk);
  }
  bool splits_cross_entropy() const override { return true; }
  double softmax_cross_entropy_forward(const float* logits, const int32_t* labels, float* saved, double* row_sums,
                                       int m, int kk) override {
    return k::softmax_cross_entropy_forward(logits, labels, saved, row_sums, m, kk);
  }
  bool softmax_cross_entropy_backward(float* saved, const int32_t* labels, const double* row_sums, float scale, int m,
                                      int kk, float* db) override {
    k::softmax_cross_entropy_backward(saved, labels, row_sums, scale, m, kk, db);
    return db != nullptr;
  }
  void softmax_rows(const float* logits, float* probs, int m, int kk) override {
    k::softmax_rows(logits, probs, m, kk);
  }
  void add_inplace(float* y, const float* x, int64_t n) override { k::add_inplace(y, x, n); }
  void scale_inplace(float* y, float s, int64_t n) override { k::scale_inplace(y, s, n); }
  double sum_squares(const float* x, int64_t n) override { return k::sum_squares(x, n); }
  void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    k::gather_rows(src, rows, dst, count, c);
  }
  void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    k::scatter_add_rows(src, rows, dst, count, c);
  }
  void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s) override {
    refuse_frozen(params, n);
    k::adamw_update(params, grads, m, v, n, s);
  }
  bool skips_dead_rows() const override { return true; }
  double sum_squares_live(const float* x, int64_t n, const LiveRows& z) override {
    return k::sum_squares_live(x, n, z);
  }
  void adamw_update_live(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s,
                         const LiveRows& z) override {
    refuse_frozen(params, n);
    k::adamw_update_live(params, grads, m, v, n, s, z);
  }
  void zero_live_rows(float* x, const LiveRows& z) override { k::zero_live_rows(x, z); }
  void freeze_weights(const float* params, int64_t n) override { gemm_.freeze(params, n); }
  int64_t first_nonfinite(const float* x, int64_t n) override { return k::first_nonfinite(x, n); }
  double gemm_ceiling_gflops() override { return k::gemm_ceiling_gflops(gemm_); }

 private:
  void refuse_frozen(const float* params, int64_t n) const {
    TLM_CHECK(!gemm_.frozen(params, n), "AdamW update of weights frozen for inference (freeze_weights)");
  }
  Precision precision_;
  k::CpuGemm gemm_;  // its scratch makes the back end one thread's at a time, as the contract says
  bool absorb_;      // absorbed attention offered (absorbs_attention)
};

// fp32's GEMM library: OpenBLAS unless TLM_CPU_GEMM=onednn.
k::GemmMode fp32_gemm() {
  const char* env = std::getenv("TLM_CPU_GEMM");
  const std::string v = env ? env : "";
  if (v.empty() || v == "openblas") return k::GemmMode::kOpenBlasFp32;
  if (v == "onednn") return k::GemmMode::kOneDnnFp32;
  throw Error(fmt::format("TLM_CPU_GEMM={}: not one of openblas, onednn", v));
}

// Native bf16: the CPU computes it (capped by TLM_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA) and oneDNN
// has the matmuls a linear layer needs (CpuGemm::unavailable checks both).
k::NativeBf16 native_bf16_gemm() {
  static const k::NativeBf16 native = [] {
    const std::string why_not = k::CpuGemm::unavailable(k::GemmMode::kBf16OneDnn);
    return why_not.empty() ? k::native_bf16() : k::NativeBf16{false, why_not};
  }();
  return native;
}

std::unique_ptr<Backend> make_cpu(const Device& device, Precision precision) {
  TLM_CHECK(device.index == 0, "device {}: the CPU has no index (use --device cpu)", device.name());
  const k::GemmMode fp32 = fp32_gemm();  // a bad TLM_CPU_GEMM is refused whatever the precision
  if (precision == Precision::kFp32) return make_cpu_backend(precision, fp32);
  return make_cpu_backend(precision,
                          native_bf16_gemm().available ? k::GemmMode::kBf16OneDnn : k::GemmMode::kBf16Emulated);
}

std::pair<Precision, std::string> cpu_auto_precision(const Device&) {
  const k::NativeBf16 n = native_bf16_gemm();
  if (n.available) return {Precision::kBf16, fmt::format("auto precision: bf16 ({})", n.why)};
  return {Precision::kFp32, fmt::format("auto precision: fp32 ({})", n.why)};
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(Precision precision, kernels::GemmMode gemm, bool absorb) {
  const bool bf16_gemm = gemm == k::GemmMode::kBf16Emulated || gemm == k::GemmMode::kBf16OneDnn;
  TLM_CHECK(bf16_gemm == (precision == Precision::kBf16), "GEMM {} does not compute in {}", k::gemm_mode_name(gemm),
            precision_name(precision));
  return std::make_unique<CpuBackend>(precision, gemm, absorb);
}

BackendEntry cpu_backend_entry() {
  return {DeviceKind::kCpu, &make_cpu, &cpu_auto_precision, [] { return 1; }};
}

}  // namespace tlm
