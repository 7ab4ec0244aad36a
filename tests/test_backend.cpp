// The back-end seam: device names and the registry, the CPU back end's own ops, and a guarded
// "device" whose memory the host cannot touch outside the back end's calls (it is mapped
// PROT_NONE except while an op or copy runs). A model trained, checkpointed, reloaded and asked
// for probabilities through it must equal the plain CPU back end bit for bit: so no code outside a
// back end reads or writes device memory, which is what a GPU back end needs.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "backend/backend.h"
#include "temp_dir.h"
#include "test_helpers.h"
#include "tlm/check.h"
#include "tlm/model_io.h"
#include "tlm/optim.h"

namespace tlm::testing {
namespace {

TEST(Device, NamesParseAndBadOnesAreRefused) {
  EXPECT_EQ(parse_device("cpu").name(), "cpu");
  EXPECT_EQ(parse_device("cuda").name(), "cuda:0");
  EXPECT_EQ(parse_device("cuda:3").index, 3);
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU", ""}) {
    try {
      parse_device(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("use cpu, cuda or cuda:N"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(precision_request_name(parse_precision("auto")), "auto");
  EXPECT_THROW(parse_precision("fp16"), Error);
}

TEST(Device, TheRegistryRefusesWhatThisBuildLacks) {
  EXPECT_EQ(device_count(DeviceKind::kCpu), 1);
  if (!backend_built(DeviceKind::kCuda)) {
    EXPECT_EQ(device_count(DeviceKind::kCuda), 0);
  }
  // A CPU-only build names what it lacks; a CUDA build without a GPU says so (with a GPU, it runs).
  try {
    make_backend(parse_device("cuda:0"), Precision::kFp32);
    EXPECT_TRUE(backend_built(DeviceKind::kCuda)) << "a CUDA back end in a CPU-only build";
  } catch (const Error& e) {
    const char* expected = backend_built(DeviceKind::kCuda) ? "no usable CUDA GPU" : "no CUDA back end";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  const auto cpu = make_backend(Device{}, Precision::kFp32);
  EXPECT_EQ(cpu->device(), Device{});
  EXPECT_NE(cpu->describe().find("cpu fp32"), std::string::npos);
  // auto is bf16 exactly where the bf16 back end runs natively (else emulated), and says why.
  const auto bf16 = make_backend(Device{}, Precision::kBf16);
  EXPECT_EQ(bf16->precision(), Precision::kBf16);
  const bool native = bf16->describe().find("oneDNN bf16") != std::string::npos;
  EXPECT_TRUE(native || bf16->describe().find("bf16 emulated") != std::string::npos) << bf16->describe();
  std::string note;
  EXPECT_EQ(resolve_precision(PrecisionRequest::kAuto, Device{}, &note), native ? Precision::kBf16 : Precision::kFp32);
  EXPECT_NE(note.find(native ? "auto precision: bf16" : "auto precision: fp32"), std::string::npos) << note;
  EXPECT_EQ(resolve_precision(PrecisionRequest::kBf16, Device{}, &note), Precision::kBf16);
}

TEST(CpuBackend, RowsAdamWAndNonFinite) {
  Backend& be = *default_backend();
  const std::vector<float> src = {1, 2, 3, 4, 5, 6};  // (3, 2)
  const std::vector<int32_t> rows = {2, 0};
  std::vector<float> dst(4);
  be.gather_rows(src.data(), rows.data(), dst.data(), 2, 2);
  EXPECT_EQ(dst, (std::vector<float>{5, 6, 1, 2}));
  std::vector<float> acc(6, 1.0f);
  be.scatter_add_rows(dst.data(), rows.data(), acc.data(), 2, 2);
  EXPECT_EQ(acc, (std::vector<float>{2, 3, 1, 1, 6, 7}));
  // One AdamW update by hand: m = 0.1 g, v = 0.001 g^2, p' = p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps).
  std::vector<float> p = {1.0f}, g = {0.5f}, m = {0.0f}, v = {0.0f};
  const double lr = 0.01, wd = 0.1;
  AdamWScalars s{};
  s.decay_factor = static_cast<float>(1 - lr * wd);
  s.beta1 = 0.9f;
  s.beta2 = 0.999f;
  s.one_minus_beta1 = 0.1f;
  s.one_minus_beta2 = 0.001f;
  s.step_size = static_cast<float>(lr / (1 - 0.9));
  s.bias_correction2_sqrt = static_cast<float>(std::sqrt(1 - 0.999));
  s.eps = 1e-8f;
  be.adamw_update(p.data(), g.data(), m.data(), v.data(), 1, s);
  const double expected = 1.0 * (1 - lr * wd) - lr * 0.5 / (0.5 + 1e-8);  // m_hat = g, sqrt(v_hat) = |g|
  EXPECT_NEAR(p[0], expected, 1e-6);
  std::vector<float> x = {0, 1, NAN, INFINITY};
  EXPECT_EQ(be.first_nonfinite(x.data(), 2), -1);
  EXPECT_EQ(be.first_nonfinite(x.data(), 4), 2);
}

TEST(CpuBackend, DeviceBufferRangesAreChecked) {
  DeviceBuffer<float> buf(*default_backend(), 4);
  std::vector<float> host(5, 1.0f);
  EXPECT_THROW(buf.upload(host.data(), 5), Error);
  EXPECT_THROW(buf.download(host.data(), 2, 3), Error);
  buf.upload(host.data(), 2, 2);
  buf.download(host.data(), 4);
  EXPECT_EQ(host, (std::vector<float>{0, 0, 1, 1, 1}));  // made zero-filled
}

TEST(CpuBackend, BackwardAfterProbabilitiesIsRefused) {
  // probabilities() turns the logits into probabilities in place on the device.
  const BertConfig cfg = small_config(Head::kClassification);
  const Batch batch = random_batch(cfg, {6, 4}, 3);
  BertModel model(cfg, limits_for(batch, cfg.max_position_embeddings));
  model.init_weights(1);
  std::vector<float> probs(2 * cfg.num_labels());
  model.probabilities(batch, probs.data());
  EXPECT_THROW(model.backward(1.0f), Error);
  model.forward(batch, true, 1);
  model.backward(1.0f);
}

// The CPU back end behind memory the host may not touch: every allocation is its own mapping,
// readable and writable only while one of the back end's calls runs.
class GuardedBackend final : public Backend {
 public:
  // split: the CPU's split cross-entropy through the guard; else the back end says it has none, so
  // the model runs the fused op in forward and backward (and must not call the split ops).
  // absorb: likewise the CPU's absorbed attention (else a classifier's last layer projects its keys
  // and values, as on a back end without it).
  explicit GuardedBackend(bool split = true, bool absorb = true)
      : inner_(make_backend(Device{}, Precision::kFp32)), split_(split), absorb_(absorb) {}
  ~GuardedBackend() override {
    for (auto& [p, size] : regions_) munmap(p, size);
  }
  int64_t calls() const { return calls_; }

  Device device() const override { return inner_->device(); }
  Precision precision() const override { return inner_->precision(); }
  int threads() const override { return inner_->threads(); }
  std::string describe() const override { return "guarded " + inner_->describe(); }

  void* allocate(size_t bytes) override {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = (std::max<size_t>(bytes, 1) + page - 1) / page * page;
    void* p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // zero-filled
    TLM_CHECK(p != MAP_FAILED, "mmap of {} bytes failed", size);
    regions_[p] = size;
    return p;
  }
  void deallocate(void* p) override {
    const auto it = regions_.find(p);
    TLM_CHECK(it != regions_.end(), "deallocate of memory this back end did not allocate");
    munmap(p, it->second);
    regions_.erase(it);
  }
  void* allocate_host(size_t bytes) override { return inner_->allocate_host(bytes); }
  void deallocate_host(void* p) override { inner_->deallocate_host(p); }

#define TLM_GUARDED(call) \
  Open open(*this);       \
  return inner_->call;
  void upload(void* d, const void* s, size_t b) override { TLM_GUARDED(upload(d, s, b)) }
  void download(void* d, const void* s, size_t b) override { TLM_GUARDED(download(d, s, b)) }
  void copy(void* d, const void* s, size_t b) override { TLM_GUARDED(copy(d, s, b)) }
  void fill_zero(void* d, size_t b) override { TLM_GUARDED(fill_zero(d, b)) }
  void synchronize() override { inner_->synchronize(); }
  void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) override {
    TLM_GUARDED(linear_forward(x, w, b, y, n, in, out))
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                       int out) override {
    TLM_GUARDED(linear_backward(dy, x, w, dx, dw, db, n, in, out))
  }
  void layernorm_forward(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd, int n,
                         int c, float eps) override {
    TLM_GUARDED(layernorm_forward(x, g, b, y, mean, rstd, n, c, eps))
  }
  void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* g,
                          float* dx, float* dg, float* db, int n, int c) override {
    TLM_GUARDED(layernorm_backward(dy, x, mean, rstd, g, dx, dg, db, n, c))
  }
  void gelu_forward(const float* x, float* y, int64_t n) override { TLM_GUARDED(gelu_forward(x, y, n)) }
  void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) override {
    TLM_GUARDED(gelu_backward(dy, x, dx, n))
  }
  void tanh_forward(const float* x, float* y, int64_t n) override { TLM_GUARDED(tanh_forward(x, y, n)) }
  void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) override {
    TLM_GUARDED(tanh_backward(dy, y, dx, n))
  }
  void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys) override {
    TLM_GUARDED(dropout_apply(x, rows, cols, p, key, row_keys))
  }
  void embedding_forward(const int32_t* ids, const int32_t* pos_ids, const int32_t* type_ids, const float* word,
                         const float* pos, const float* type, float* out, int n, int c) override {
    TLM_GUARDED(embedding_forward(ids, pos_ids, type_ids, word, pos, type, out, n, c))
  }
  void embedding_backward(const float* dout, const int32_t* ids, const int32_t* pos_ids, const int32_t* type_ids,
                          float* dword, float* dpos, float* dtype, int n, int c) override{
      TLM_GUARDED(embedding_backward(dout, ids, pos_ids, type_ids, dword, dpos, dtype, n, c))} int64_t
      attention_scratch_size(int max_len) const override {
    return inner_->attention_scratch_size(max_len);
  }
  void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx, float* scratch,
                         const kernels::AttentionShape& shape) override {
    TLM_GUARDED(attention_forward(q, k, v, probs, ctx, scratch, shape))
  }
  void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                          float* dq, float* dk, float* dv, float* scratch,
                          const kernels::AttentionShape& shape) override {
    TLM_GUARDED(attention_backward(dctx, q, k, v, probs, dq, dk, dv, scratch, shape))
  }
  bool absorbs_attention() const override { return absorb_ && inner_->absorbs_attention(); }
  int64_t absorbed_attention_saved_size(int q_rows, int heads, int c) const override {
    return inner_->absorbed_attention_saved_size(q_rows, heads, c);
  }
  int64_t absorbed_attention_scratch_size(int q_rows, int max_q_len, int max_len, int heads, int c) const override {
    return inner_->absorbed_attention_scratch_size(q_rows, max_q_len, max_len, heads, c);
  }
  void absorbed_attention_forward(const float* q, const float* x, const float* wk, const float* wv, const float* bv,
                                  float* probs, float* saved, float* ctx, float* scratch,
                                  const kernels::AttentionShape& shape) override {
    TLM_CHECK(absorb_, "the model called absorbed attention on a back end without it");
    TLM_GUARDED(absorbed_attention_forward(q, x, wk, wv, bv, probs, saved, ctx, scratch, shape));
  }
  void absorbed_attention_backward(const float* dctx, const float* q, const float* x, const float* wk, const float* wv,
                                   const float* bv, const float* probs, const float* saved, float* dq, float* dx,
                                   float* dwk, float* dwv, float* dbv, float* scratch,
                                   const kernels::AttentionShape& shape) override {
    TLM_CHECK(absorb_, "the model called absorbed attention on a back end without it");
    TLM_GUARDED(
        absorbed_attention_backward(dctx, q, x, wk, wv, bv, probs, saved, dq, dx, dwk, dwv, dbv, scratch, shape));
  }
  int64_t conv2d_scratch_size(const kernels::ConvShape& shape) const override {
    return inner_->conv2d_scratch_size(shape);
  }
  void conv2d_forward(const float* x, const float* w, const float* b, float* y, float* scratch,
                      const kernels::ConvShape& shape) override {
    TLM_GUARDED(conv2d_forward(x, w, b, y, scratch, shape))
  }
  void conv2d_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, float* scratch,
                       const kernels::ConvShape& shape) override {
    TLM_GUARDED(conv2d_backward(dy, x, w, dx, dw, db, scratch, shape))
  }
  void batchnorm_forward_train(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd,
                               float* rmean, float* rvar, int64_t pixels, int ch, float eps, float momentum) override {
    TLM_GUARDED(batchnorm_forward_train(x, g, b, y, mean, rstd, rmean, rvar, pixels, ch, eps, momentum))
  }
  void batchnorm_forward_eval(const float* x, const float* g, const float* b, const float* rmean, const float* rvar,
                              float* y, int64_t pixels, int ch, float eps) override {
    TLM_GUARDED(batchnorm_forward_eval(x, g, b, rmean, rvar, y, pixels, ch, eps))
  }
  void batchnorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* g,
                          float* dx, float* dg, float* db, int64_t pixels, int ch) override {
    TLM_GUARDED(batchnorm_backward(dy, x, mean, rstd, g, dx, dg, db, pixels, ch))
  }
  double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m,
                               int k) override {
    TLM_GUARDED(softmax_cross_entropy(logits, labels, dlogits, scale, m, k))
  }
  void softmax_rows(const float* logits, float* probs, int m, int k) override {
    TLM_GUARDED(softmax_rows(logits, probs, m, k))
  }
  void add_inplace(float* y, const float* x, int64_t n) override { TLM_GUARDED(add_inplace(y, x, n)) }
  void scale_inplace(float* y, float s, int64_t n) override { TLM_GUARDED(scale_inplace(y, s, n)) }
  double sum_squares(const float* x, int64_t n) override { TLM_GUARDED(sum_squares(x, n)) }
  bool skips_dead_rows() const override { return inner_->skips_dead_rows(); }
  bool splits_cross_entropy() const override { return split_ && inner_->splits_cross_entropy(); }
  double softmax_cross_entropy_forward(const float* logits, const int32_t* labels, float* saved, double* row_sums,
                                       int m, int k) override {
    TLM_CHECK(split_, "the model called a split op of a back end without them");
    TLM_GUARDED(softmax_cross_entropy_forward(logits, labels, saved, row_sums, m, k))
  }
  bool softmax_cross_entropy_backward(float* saved, const int32_t* labels, const double* row_sums, float scale, int m,
                                      int k, float* db) override {
    TLM_CHECK(split_, "the model called a split op of a back end without them");
    TLM_GUARDED(softmax_cross_entropy_backward(saved, labels, row_sums, scale, m, k, db))
  }
  double sum_squares_live(const float* x, int64_t n, const LiveRows& z) override {
    TLM_GUARDED(sum_squares_live(x, n, z))
  }
  void adamw_update_live(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s,
                         const LiveRows& z) override {
    TLM_GUARDED(adamw_update_live(p, g, m, v, n, s, z))
  }
  void zero_live_rows(float* x, const LiveRows& z) override { TLM_GUARDED(zero_live_rows(x, z)) }
  void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    TLM_GUARDED(gather_rows(src, rows, dst, count, c))
  }
  void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c) override {
    TLM_GUARDED(scatter_add_rows(src, rows, dst, count, c))
  }
  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) override {
    TLM_GUARDED(adamw_update(p, g, m, v, n, s));
  }
  int64_t first_nonfinite(const float* x, int64_t n) override { TLM_GUARDED(first_nonfinite(x, n)) }
  double gemm_ceiling_gflops() override { return inner_->gemm_ceiling_gflops(); }
  void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                          float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                          const uint64_t* row_keys) override {
    TLM_GUARDED(dropout_residual_layernorm_forward(x, resid, gamma, beta, y, mean, rstd, n, c, eps, p, key, row_keys))
  }
#undef TLM_GUARDED

 private:
  // Device memory is open while a call runs, closed after.
  struct Open {
    explicit Open(GuardedBackend& g) : g_(g) {
      g_.protect(PROT_READ | PROT_WRITE);
      ++g_.calls_;
    }
    ~Open() { g_.protect(PROT_NONE); }
    GuardedBackend& g_;
  };
  void protect(int prot) {
    for (auto& [p, size] : regions_) TLM_CHECK(mprotect(p, size, prot) == 0, "mprotect failed");
  }

  std::shared_ptr<Backend> inner_;
  bool split_, absorb_;
  std::map<void*, size_t> regions_;
  int64_t calls_ = 0;
};

struct Trajectory {
  std::vector<float> params, exp_avg, exp_avg_sq, probs;
  std::vector<double> scalars;  // per step: the gradient norm and the loss
};

class BackendSeam : public TempDirTest {
 protected:
  // Four AdamW steps with dropout, a checkpoint of the weights and moments, a reload into a fresh
  // model and optimiser on the same back end, and the reloaded model's probabilities.
  Trajectory train(Head head, const std::shared_ptr<Backend>& be, const std::string& dir) {
    const BertConfig cfg = small_config(head);
    const Batch batch = random_batch(cfg, {9, 5, 12}, 11);
    const ModelLimits lim = limits_for(batch, cfg.max_position_embeddings);
    Trajectory t;
    {
      BertModel model(cfg, lim, be);
      model.init_weights(5);
      AdamW adam(model.table(), AdamWOptions{.lr = 1e-3}, be);
      for (int step = 0; step < 4; ++step) {
        model.zero_grad();
        const ForwardResult f = model.forward(batch, true, 100 + step);
        model.backward(static_cast<float>(1.0 / f.count));
        // The trainer's way: rows known to be zero skipped, clipping inside AdamW.
        const kernels::LiveRows* zero_rows = model.zero_grad_rows();
        const GradClip clip = clip_coefficient(model.backend(), model.grads(), model.num_params(), 1.0, zero_rows);
        t.scalars.push_back(clip.norm);
        adam.step(model.params(), model.grads(), 1e-3, clip.coefficient, zero_rows);
        t.scalars.push_back(f.loss_sum);
      }
      save_model(dir, model);
      save_optimizer(dir, adam, model.table());
    }
    BertModel model(cfg, lim, be);
    load_model_weights(model, dir, {LoadMode::kExact, false});
    AdamW adam(model.table(), AdamWOptions{.lr = 1e-3}, be);
    load_optimizer(dir, adam, model.table());
    t.params = model.params_to_host();
    t.exp_avg = adam.exp_avg_to_host();
    t.exp_avg_sq = adam.exp_avg_sq_to_host();
    const int rows = head == Head::kMaskedLM ? static_cast<int>(batch.mlm_positions.size()) : batch.num_seqs();
    t.probs.resize(static_cast<size_t>(rows) * (head == Head::kMaskedLM ? cfg.vocab_size : cfg.num_labels()));
    model.probabilities(batch, t.probs.data());
    return t;
  }
};

// MLM runs twice: the guard around the CPU's split cross-entropy, and a back end without it (the
// model's fused path, forward and backward), which must give the split's bits too.
TEST_F(BackendSeam, AGuardedDeviceTrainsExactlyAsTheCpu) {
  for (auto [head, split] :
       {std::pair{Head::kMaskedLM, true}, std::pair{Head::kMaskedLM, false}, std::pair{Head::kClassification, true}}) {
    auto guarded = std::make_shared<GuardedBackend>(split);
    const Trajectory want = train(head, default_backend(), path("cpu"));
    const Trajectory got = train(head, guarded, path("guarded"));
    EXPECT_GT(guarded->calls(), 100);
    EXPECT_EQ(got.scalars, want.scalars);
    ASSERT_EQ(got.params.size(), want.params.size());
    EXPECT_TRUE(bit_identical(got.params.data(), want.params.data(), static_cast<int64_t>(want.params.size())));
    EXPECT_TRUE(bit_identical(got.exp_avg.data(), want.exp_avg.data(), static_cast<int64_t>(want.exp_avg.size())));
    EXPECT_TRUE(
        bit_identical(got.exp_avg_sq.data(), want.exp_avg_sq.data(), static_cast<int64_t>(want.exp_avg_sq.size())));
    EXPECT_TRUE(bit_identical(got.probs.data(), want.probs.data(), static_cast<int64_t>(want.probs.size())));
  }
}

// A back end without absorbed attention runs a classifier's last layer on projected keys and
// values: the same function, so the same training to fp32 rounding (not bitwise: other sums, and
// the key bias, whose gradient is rounding noise there and exactly 0 when absorbed, takes Adam
// steps of up to lr there, which change no output). A wrong key or value offset moves the losses by
// far more.
TEST_F(BackendSeam, AbsorbedAndProjectedAttentionTrainAlike) {
  auto projecting = std::make_shared<GuardedBackend>(true, false);
  ASSERT_TRUE(default_backend()->absorbs_attention());
  ASSERT_FALSE(projecting->absorbs_attention());
  const Trajectory want = train(Head::kClassification, default_backend(), path("absorbed"));
  const Trajectory got = train(Head::kClassification, projecting, path("projected"));
  ASSERT_EQ(got.scalars.size(), want.scalars.size());
  for (size_t i = 0; i < want.scalars.size(); ++i) {
    EXPECT_NEAR(got.scalars[i], want.scalars[i], 1e-5 * std::fabs(want.scalars[i])) << "step scalar " << i;
  }
  ASSERT_EQ(got.probs.size(), want.probs.size());
  for (size_t i = 0; i < want.probs.size(); ++i) EXPECT_NEAR(got.probs[i], want.probs[i], 1e-5) << "probability " << i;
}

// The guard is real: the host reading device memory outside a call is a crash.
TEST(BackendSeamDeathTest, TheHostCannotReadGuardedMemory) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto guarded = std::make_shared<GuardedBackend>();
        BertModel model(small_config(Head::kMaskedLM), ModelLimits{8, 1, 8, 1}, guarded);
        std::fputs("reading device memory from the host\n", stderr);
        volatile float first = model.params()[0];
        (void)first;
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "reading device memory from the host");
}

}  // namespace
}  // namespace tlm::testing
