// The back-end seam: a device and a compute precision behind one contract. The model, the
// optimiser and the checkpoint code issue every op and every copy through a Backend; adding a
// device means one folder of kernels (src/kernels/<device>/) and one line in registry.cpp.
//
// Memory: every pointer an op takes is *device* memory from allocate() (a DeviceBuffer), unless
// it says host. The CPU's device memory is host memory; a GPU's is not, so code outside a
// back end never dereferences a device pointer: it uploads and downloads.
// Ordering: ops and copies are issued on the back end's one stream and run in issue order;
// upload() may return before the copy is done (the host buffer must live until synchronize()),
// download() and the ops that return a number wait for the stream. deallocate() is ordered
// after the work already issued (it frees once that is done, or synchronizes first). The CPU runs
// everything at once, so its synchronize() is free.
// Threads: a back end is used by one thread at a time (one stream); work that runs side by side
// (a committee's members) takes one back end each. The CPU back end keeps no state, so sharing it
// is also safe, but code must not rely on that.
//
// The ops' contracts (shapes, accumulate vs overwrite, dropout keying) are those of
// kernels/kernels.h, which the CPU back end implements; ops added for the seam are described here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "kernels/kernels.h"
#include "tlm/check.h"
#include "tlm/device.h"

namespace tlm {

using kernels::AdamWScalars;
using kernels::LiveRows;

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual Precision precision() const = 0;
  virtual int threads() const = 0;           // host threads the back end computes with
  virtual std::string describe() const = 0;  // for manifests, e.g. "cpu fp32 (OpenBLAS 0.3.21, 2 threads)"

  // ---- memory and the stream ----
  virtual void* allocate(size_t bytes) = 0;  // device memory, zero-filled
  virtual void deallocate(void* p) = 0;
  virtual void* allocate_host(size_t bytes) = 0;  // host memory uploads can be asynchronous from (pinned)
  virtual void deallocate_host(void* p) = 0;
  virtual void upload(void* device_dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void copy(void* device_dst, const void* device_src, size_t bytes) = 0;
  virtual void fill_zero(void* device_dst, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ---- the model's ops (kernels/kernels.h) ----
  virtual void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) = 0;
  virtual void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n,
                               int in, int out) = 0;
  virtual void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                                 float* rstd, int n, int c, float eps) = 0;
  virtual void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd,
                                  const float* gamma, float* dx, float* dgamma, float* dbeta, int n, int c) = 0;
  virtual void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta,
                                                  float* y, float* mean, float* rstd, int n, int c, float eps, float p,
                                                  uint64_t key, const uint64_t* row_keys) = 0;
  virtual void gelu_forward(const float* x, float* y, int64_t n) = 0;
  virtual void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) = 0;
  virtual void tanh_forward(const float* x, float* y, int64_t n) = 0;
  virtual void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) = 0;
  virtual void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys) = 0;
  virtual void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                                 const float* word, const float* pos, const float* type, float* out, int n, int c) = 0;
  virtual void embedding_backward(const float* dout, const int32_t* ids, const int32_t* positions,
                                  const int32_t* type_ids, float* dword, float* dpos, float* dtype, int n, int c) = 0;
  // The shape's offset and key arrays are device memory.
  virtual int64_t attention_scratch_size(int max_len) const = 0;  // floats
  virtual void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx,
                                 float* scratch, const kernels::AttentionShape& shape) = 0;
  virtual void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                                  float* dq, float* dk, float* dv, float* scratch,
                                  const kernels::AttentionShape& shape) = 0;
  // Attention at few query rows with the key and value projections absorbed (kernels.h). A back
  // end that has it says so and overrides all four; the model then runs a classification head's
  // last layer through it, and an MLM head's where that costs less (model.cpp), else through
  // attention_forward on projected keys and values.
  virtual bool absorbs_attention() const { return false; }
  virtual int64_t absorbed_attention_saved_size(int /*q_rows*/, int /*heads*/, int /*c*/) const { return 0; }
  virtual int64_t absorbed_attention_scratch_size(int /*q_rows*/, int /*max_q_len*/, int /*max_len*/, int /*heads*/,
                                                  int /*c*/) const {
    return 0;
  }
  virtual void absorbed_attention_forward(const float* /*q*/, const float* /*x*/, const float* /*wk*/,
                                          const float* /*wv*/, const float* /*bv*/, float* /*probs*/, float* /*saved*/,
                                          float* /*ctx*/, float* /*scratch*/,
                                          const kernels::AttentionShape& /*shape*/) {
    throw Error(describe() + " has no absorbed attention (absorbs_attention() is false)");
  }
  virtual void absorbed_attention_backward(const float* /*dctx*/, const float* /*q*/, const float* /*x*/,
                                           const float* /*wk*/, const float* /*wv*/, const float* /*bv*/,
                                           const float* /*probs*/, const float* /*saved*/, float* /*dq*/, float* /*dx*/,
                                           float* /*dwk*/, float* /*dwv*/, float* /*dbv*/, float* /*scratch*/,
                                           const kernels::AttentionShape& /*shape*/) {
    throw Error(describe() + " has no absorbed attention (absorbs_attention() is false)");
  }
  // The convolution's offsets are device memory.
  virtual int64_t conv2d_scratch_size(const kernels::ConvShape& shape) const = 0;  // floats
  virtual void conv2d_forward(const float* x, const float* w, const float* b, float* y, float* scratch,
                              const kernels::ConvShape& shape) = 0;
  virtual void conv2d_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                               float* scratch, const kernels::ConvShape& shape) = 0;
  virtual void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                                       float* rstd, float* running_mean, float* running_var, int64_t pixels, int ch,
                                       float eps, float momentum) = 0;
  virtual void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, const float* running_mean,
                                      const float* running_var, float* y, int64_t pixels, int ch, float eps) = 0;
  virtual void batchnorm_backward(const float* dy, const float* x, const float* mean, const float* rstd,
                                  const float* gamma, float* dx, float* dgamma, float* dbeta, int64_t pixels,
                                  int ch) = 0;
  virtual double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m,
                                       int k) = 0;
  virtual void softmax_rows(const float* logits, float* probs, int m, int k) = 0;
  // Training's cross-entropy in two (kernels.h): the forward keeps in saved (m, k) and row_sums
  // (m) what the backward needs, and the backward turns saved into dlogits in place; with db, it
  // returns true when it added the column sums to db, false when it left them to the caller. A
  // back end that has them says so and overrides both (the model then keeps the buffers and calls
  // them; else it runs softmax_cross_entropy in forward and backward and never calls these).
  virtual bool splits_cross_entropy() const { return false; }
  virtual double softmax_cross_entropy_forward(const float* /*logits*/, const int32_t* /*labels*/, float* /*saved*/,
                                               double* /*row_sums*/, int /*m*/, int /*k*/) {
    throw Error(describe() + " has no split cross-entropy (splits_cross_entropy() is false)");
  }
  virtual bool softmax_cross_entropy_backward(float* /*saved*/, const int32_t* /*labels*/, const double* /*row_sums*/,
                                              float /*scale*/, int /*m*/, int /*k*/, float* /*db*/) {
    throw Error(describe() + " has no split cross-entropy (splits_cross_entropy() is false)");
  }
  virtual void add_inplace(float* y, const float* x, int64_t n) = 0;
  virtual void scale_inplace(float* y, float s, int64_t n) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;

  // ---- ops added by the seam ----
  // dst row i = src row rows[i]: src (any, c), rows (count), dst (count, c)
  virtual void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c) = 0;
  // dst row rows[i] += src row i: src (count, c), rows (count, distinct), dst (any, c)
  virtual void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c) = 0;
  // One AdamW update of params/m/v (n) from grads (n), in fp32.
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                            const AdamWScalars& s) = 0;
  // Index of the first non-finite value of x (n), or -1.
  virtual int64_t first_nonfinite(const float* x, int64_t n) = 0;

  // ---- arrays with rows known to be zero (kernels::LiveRows; its flags are device memory) ----
  // The dense ops' results without touching the dead rows. A back end without its own kernels
  // runs the dense ops, which give the same results, and says so here (the model then keeps no
  // flags for it).
  virtual bool skips_dead_rows() const { return false; }
  virtual double sum_squares_live(const float* x, int64_t n, const LiveRows& z) {
    (void)z;
    return sum_squares(x, n);
  }
  virtual void adamw_update_live(float* params, const float* grads, float* m, float* v, int64_t n,
                                 const AdamWScalars& s, const LiveRows& z) {
    (void)z;
    adamw_update(params, grads, m, v, n, s);
  }
  // x's live rows set to +0 (the dead ones are): afterwards the whole region is
  virtual void zero_live_rows(float* x, const LiveRows& z) {
    fill_zero(x + z.offset, sizeof(float) * static_cast<size_t>(z.rows * z.cols));
  }

  // ---- weights that stay ----
  // params (n) will not change until freeze_weights(nullptr, 0) or the back end's end (a model
  // loaded for inference): a back end may keep copies made from them (the CPU's bf16 GEMM keeps
  // the weights' bf16 operands instead of converting them at every call). An AdamW update of
  // frozen weights is refused.
  virtual void freeze_weights(const float* /*params*/, int64_t /*n*/) {}

  // ---- what a back end may lack ----
  enum class Feature { kConvFrontEnd };
  // Empty when this back end has `feature`; else why not, in words for the user (a job asks
  // before it writes anything).
  virtual std::string lacks(Feature feature) const {
    (void)feature;
    return "";
  }

  // ---- measurement ----
  // GFLOP/s of this back end's GEMM (its library, its precision: fp32 in and out, bf16 operands
  // for bf16) on a large square product, best of a few: the ceiling benchmarks compare with.
  virtual double gemm_ceiling_gflops() = 0;
};

// Device memory of `count` T, owned (move-only); zero-filled when made.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, int64_t count)
      : backend_(&backend),
        count_(count),
        data_(static_cast<T*>(count > 0 ? backend.allocate(sizeof(T) * static_cast<size_t>(count)) : nullptr)) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(backend_, o.backend_);
      std::swap(count_, o.count_);
      std::swap(data_, o.data_);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return count_; }
  // host (count) -> this buffer from element `offset`; asynchronous (see Backend::upload)
  void upload(const T* host, int64_t count, int64_t offset = 0) {
    check_range(count, offset);
    if (count > 0) backend_->upload(data_ + offset, host, sizeof(T) * static_cast<size_t>(count));
  }
  // this buffer from element `offset` -> host (count); waits for the stream
  void download(T* host, int64_t count, int64_t offset = 0) const {
    check_range(count, offset);
    if (count > 0) backend_->download(host, data_ + offset, sizeof(T) * static_cast<size_t>(count));
  }
  void zero() {
    if (count_ > 0) backend_->fill_zero(data_, sizeof(T) * static_cast<size_t>(count_));
  }

 private:
  void check_range(int64_t count, int64_t offset) const {
    TLM_CHECK(count >= 0 && offset >= 0 && offset + count <= count_,
              "device buffer of {} elements: [{}, {}) is outside", count_, offset, offset + count);
  }
  void reset() {
    if (data_) backend_->deallocate(data_);
    data_ = nullptr;
    count_ = 0;
  }
  Backend* backend_ = nullptr;
  int64_t count_ = 0;
  T* data_ = nullptr;
};

// ---- the registry: one entry per device kind compiled in ----
struct BackendEntry {
  DeviceKind kind;
  // Makes the back end of `device` at `precision`; throws tlm::Error with a clear message when
  // the device or precision is not available here.
  std::unique_ptr<Backend> (*make)(const Device& device, Precision precision);
  // What `auto` means on this device here (bf16 where the hardware computes it natively), and a
  // one-line note saying why, for the log.
  std::pair<Precision, std::string> (*auto_precision)(const Device& device);
  // How many devices of this kind the machine has (the CPU: 1; none usable: 0).
  int (*count)();
};

// Whether this build has a back end for `kind` (CUDA: built with -DTLM_CUDA=ON).
bool backend_built(DeviceKind kind);
// The back end of `device` at `precision`; a device kind not compiled in is refused by name.
std::shared_ptr<Backend> make_backend(const Device& device, Precision precision);

}  // namespace tlm
