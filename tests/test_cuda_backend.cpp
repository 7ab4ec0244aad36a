// The CUDA back end against the CPU back end, op by op, on the same inputs: every op of the seam
// the model and AdamW use. The CPU ops are proven against PyTorch (test_golden) and by finite
// differences (test_kernels_gradcheck), so agreement here carries both proofs to the GPU.
// Tolerances: ops with the same arithmetic in the same order (masks, gathers, AdamW, the
// embeddings' sums) must agree bit for bit; ops whose fp32 sums run in another order (GEMMs,
// attention, LayerNorm's statistics, reductions) within 1e-5 normwise, the error of a few
// thousand fp32 additions; GELU within 1e-6 (the CPU's erf is a polynomial accurate to ~1e-7).
// Skipped, with the reason, where the build has no CUDA back end or the machine no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm_cpu.h"
#include "tlm/rng.h"

namespace tlm::testing {
namespace {

namespace k = kernels;

// max |a - b| / max |b| (or the absolute error where b is all zero)
double rel(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale > 0 ? err / scale : err;
}

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// One host array uploaded to both back ends.
template <typename T>
struct Twin {
  Twin(Backend& cpu, Backend& gpu, const std::vector<T>& host)
      : on_cpu(cpu, static_cast<int64_t>(host.size())), on_gpu(gpu, static_cast<int64_t>(host.size())) {
    on_cpu.upload(host.data(), static_cast<int64_t>(host.size()));
    on_gpu.upload(host.data(), static_cast<int64_t>(host.size()));
  }
  T* c() { return on_cpu.data(); }
  T* g() { return on_gpu.data(); }
  std::vector<T> cpu_host() const { return down(on_cpu); }
  std::vector<T> gpu_host() const { return down(on_gpu); }
  static std::vector<T> down(const DeviceBuffer<T>& b) {
    std::vector<T> h(static_cast<size_t>(b.size()));
    b.download(h.data(), b.size());
    return h;
  }
  DeviceBuffer<T> on_cpu, on_gpu;
};

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override { make(Precision::kFp32); }
  void make(Precision p) {
    if (!backend_built(DeviceKind::kCuda)) GTEST_SKIP() << "this build has no CUDA back end (make cuda builds one)";
    try {
      gpu_ = make_backend(Device{DeviceKind::kCuda, 0}, p);
    } catch (const Error& e) {
      GTEST_SKIP() << "the CUDA back end cannot run here: " << e.what();
    }
    cpu_ = make_cpu_backend(p, p == Precision::kBf16 ? k::GemmMode::kBf16Emulated : k::GemmMode::kOpenBlasFp32);
  }
  template <typename T>
  Twin<T> twin(const std::vector<T>& host) {
    return Twin<T>(*cpu_, *gpu_, host);
  }
  template <typename T>
  Twin<T> zeros(size_t n) {
    return twin(std::vector<T>(n));
  }
  std::shared_ptr<Backend> cpu_, gpu_;
};

// x starts `skew` floats into its buffer (an operand inside a larger buffer, as q inside qkv).
void check_linear(Backend& cpu, Backend& gpu, double tol, int n = 37, int in = 48, int out = 80, int skew = 0) {
  Twin<float> xs(cpu, gpu, randn(static_cast<size_t>(n) * in + skew, 1)),
      w(cpu, gpu, randn(static_cast<size_t>(out) * in, 2, 0.1f)), b(cpu, gpu, randn(out, 3)),
      y(cpu, gpu, std::vector<float>(static_cast<size_t>(n) * out)),
      dy(cpu, gpu, randn(static_cast<size_t>(n) * out, 4)),
      dx(cpu, gpu, std::vector<float>(static_cast<size_t>(n) * in)),
      dw(cpu, gpu, randn(static_cast<size_t>(out) * in, 5)), db(cpu, gpu, randn(out, 6));
  const float* xc = xs.c() + skew;
  const float* xg = xs.g() + skew;
  cpu.linear_forward(xc, w.c(), b.c(), y.c(), n, in, out);
  gpu.linear_forward(xg, w.g(), b.g(), y.g(), n, in, out);
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), tol) << "y";
  cpu.linear_backward(dy.c(), xc, w.c(), dx.c(), dw.c(), db.c(), n, in, out);
  gpu.linear_backward(dy.g(), xg, w.g(), dx.g(), dw.g(), db.g(), n, in, out);
  EXPECT_LE(rel(dx.gpu_host(), dx.cpu_host()), tol) << "dx";
  EXPECT_LE(rel(dw.gpu_host(), dw.cpu_host()), tol) << "dw (accumulated)";
  EXPECT_LE(rel(db.gpu_host(), db.cpu_host()), tol) << "db (accumulated)";
}

TEST_F(CudaOps, LinearFp32) { check_linear(*cpu_, *gpu_, 1e-5); }

TEST_F(CudaOps, LinearBf16RoundsTheSameOperands) {
  make(Precision::kBf16);
  if (IsSkipped()) return;
  // The same bf16 operands on both sides, fp32 sums in another order: fp32's tolerance.
  check_linear(*cpu_, *gpu_, 1e-5);
}
// Sizes that are no multiple of 4 and an operand off a 16-byte boundary: the bf16 rounding's
// four-at-a-time path, its tail and its one-at-a-time fallback.
TEST_F(CudaOps, LinearBf16OddSizesAndAnUnalignedOperand) {
  make(Precision::kBf16);
  if (IsSkipped()) return;
  check_linear(*cpu_, *gpu_, 1e-5, 37, 45, 79, 1);
}

TEST_F(CudaOps, LayerNormAndTheFusedTail) {
  const int n = 29, c = 768;  // BERT-base's width: every thread of a 256-thread row takes 3 columns
  auto x = twin(randn(static_cast<size_t>(n) * c, 7, 2.0f)), resid = twin(randn(static_cast<size_t>(n) * c, 8)),
       gamma = twin(randn(c, 9)), beta = twin(randn(c, 10)), y = zeros<float>(static_cast<size_t>(n) * c),
       mean = zeros<float>(n), rstd = zeros<float>(n);
  cpu_->layernorm_forward(x.c(), gamma.c(), beta.c(), y.c(), mean.c(), rstd.c(), n, c, 1e-12f);
  gpu_->layernorm_forward(x.g(), gamma.g(), beta.g(), y.g(), mean.g(), rstd.g(), n, c, 1e-12f);
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), 1e-6);
  EXPECT_LE(rel(rstd.gpu_host(), rstd.cpu_host()), 1e-6);
  auto dy = twin(randn(static_cast<size_t>(n) * c, 11)), dx = zeros<float>(static_cast<size_t>(n) * c),
       dg = twin(randn(c, 12)), dbeta = twin(randn(c, 13));
  cpu_->layernorm_backward(dy.c(), x.c(), mean.c(), rstd.c(), gamma.c(), dx.c(), dg.c(), dbeta.c(), n, c);
  gpu_->layernorm_backward(dy.g(), x.g(), mean.g(), rstd.g(), gamma.g(), dx.g(), dg.g(), dbeta.g(), n, c);
  EXPECT_LE(rel(dx.gpu_host(), dx.cpu_host()), 1e-5) << "dx";
  EXPECT_LE(rel(dg.gpu_host(), dg.cpu_host()), 1e-5) << "dgamma";
  EXPECT_LE(rel(dbeta.gpu_host(), dbeta.cpu_host()), 1e-5) << "dbeta";
  // dropout + residual + LayerNorm: the same mask (bit for bit), the same statistics.
  std::vector<uint64_t> keys(n);
  for (int i = 0; i < n; ++i) keys[i] = token_key(3, i);
  auto row_keys = twin(keys);
  cpu_->dropout_residual_layernorm_forward(x.c(), resid.c(), gamma.c(), beta.c(), y.c(), mean.c(), rstd.c(), n, c,
                                           1e-12f, 0.1f, 42, row_keys.c());
  gpu_->dropout_residual_layernorm_forward(x.g(), resid.g(), gamma.g(), beta.g(), y.g(), mean.g(), rstd.g(), n, c,
                                           1e-12f, 0.1f, 42, row_keys.g());
  EXPECT_EQ(x.gpu_host(), x.cpu_host()) << "dropout(x) + resid";
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), 1e-6);
}

TEST_F(CudaOps, ElementwiseAndDropout) {
  const int64_t n = 5000;
  auto x = twin(randn(n, 14, 3.0f)), y = zeros<float>(n), dy = twin(randn(n, 15)), dx = zeros<float>(n);
  cpu_->gelu_forward(x.c(), y.c(), n);
  gpu_->gelu_forward(x.g(), y.g(), n);
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), 1e-6) << "gelu";
  cpu_->gelu_backward(dy.c(), x.c(), dx.c(), n);
  gpu_->gelu_backward(dy.g(), x.g(), dx.g(), n);
  EXPECT_LE(rel(dx.gpu_host(), dx.cpu_host()), 1e-6) << "gelu backward";
  cpu_->tanh_forward(x.c(), y.c(), n);
  gpu_->tanh_forward(x.g(), y.g(), n);
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), 1e-6) << "tanh";
  cpu_->tanh_backward(dy.c(), y.c(), dx.c(), n);
  gpu_->tanh_backward(dy.g(), y.g(), dx.g(), n);
  EXPECT_LE(rel(dx.gpu_host(), dx.cpu_host()), 1e-6) << "tanh backward";
  cpu_->add_inplace(y.c(), x.c(), n);
  gpu_->add_inplace(y.g(), x.g(), n);
  cpu_->scale_inplace(y.c(), 0.37f, n);
  gpu_->scale_inplace(y.g(), 0.37f, n);
  EXPECT_LE(rel(y.gpu_host(), y.cpu_host()), 1e-6) << "add, scale";
  const int rows = 50, cols = 100;
  std::vector<uint64_t> keys(rows);
  for (int i = 0; i < rows; ++i) keys[i] = token_key(9, i);
  auto row_keys = twin(keys);
  cpu_->dropout_apply(x.c(), rows, cols, 0.25f, 77, row_keys.c());
  gpu_->dropout_apply(x.g(), rows, cols, 0.25f, 77, row_keys.g());
  EXPECT_EQ(x.gpu_host(), x.cpu_host()) << "dropout: the same mask and scale, bit for bit";
}

// fp64 sums rounded once to fp32: the reference an fp32 sum in any order is measured against
std::vector<float> exact_floats(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

void check_embeddings(Backend& cpu, Backend& gpu, int n, int c, int vocab, int positions) {
  std::vector<int32_t> ids(n), pos(n), types(n);
  std::mt19937 g(16);
  for (int i = 0; i < n; ++i) {
    ids[i] = static_cast<int32_t>(g() % static_cast<unsigned>(vocab));  // many repeats, as frequent words and [CLS]
    pos[i] = i % positions;
    types[i] = static_cast<int32_t>(g() % 2);
  }
  Twin<int32_t> d_ids(cpu, gpu, ids), d_pos(cpu, gpu, pos), d_types(cpu, gpu, types);
  Twin<float> word(cpu, gpu, randn(static_cast<size_t>(vocab) * c, 17)),
      ptab(cpu, gpu, randn(static_cast<size_t>(positions) * c, 18)), ttab(cpu, gpu, randn(size_t{2} * c, 19)),
      out(cpu, gpu, std::vector<float>(static_cast<size_t>(n) * c));
  for (const bool with_types : {true, false}) {
    const int32_t* tc = with_types ? d_types.c() : nullptr;
    const int32_t* tg = with_types ? d_types.g() : nullptr;
    cpu.embedding_forward(d_ids.c(), d_pos.c(), tc, word.c(), ptab.c(), ttab.c(), out.c(), n, c);
    gpu.embedding_forward(d_ids.g(), d_pos.g(), tg, word.g(), ptab.g(), ttab.g(), out.g(), n, c);
    EXPECT_EQ(out.gpu_host(), out.cpu_host()) << "embeddings";
    Twin<float> dout(cpu, gpu, randn(static_cast<size_t>(n) * c, 20)),
        dword(cpu, gpu, randn(static_cast<size_t>(vocab) * c, 21)),
        dpos(cpu, gpu, std::vector<float>(static_cast<size_t>(positions) * c)),
        dtype(cpu, gpu, std::vector<float>(size_t{2} * c));
    // The exact sums (fp64 on the host), what each table's rows gain, onto what they held.
    const std::vector<float> word_before = dword.cpu_host();
    std::vector<double> word_exact(word_before.begin(), word_before.end()),
        pos_exact(static_cast<size_t>(positions) * c), type_exact(size_t{2} * c);
    const std::vector<float> dout_host = dout.cpu_host();
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < c; ++j) {
        const double x = dout_host[static_cast<size_t>(i) * c + j];
        word_exact[static_cast<size_t>(ids[i]) * c + j] += x;
        pos_exact[static_cast<size_t>(pos[i]) * c + j] += x;
        type_exact[static_cast<size_t>(with_types ? types[i] : 0) * c + j] += x;  // none given: type 0
      }
    }
    cpu.embedding_backward(dout.c(), d_ids.c(), d_pos.c(), tc, dword.c(), dpos.c(), dtype.c(), n, c);
    gpu.embedding_backward(dout.g(), d_ids.g(), d_pos.g(), tg, dword.g(), dpos.g(), dtype.g(), n, c);
    // Sums of up to n rows, each against the exact sum rather than the CPU's: the CPU adds a run
    // of rows in order (a type row of 50k at the batch size errs by ~1e-5 normwise itself), the
    // GPU in 16 lanes of in-order sums (index_add.cu), a few thousand fp32 additions each.
    EXPECT_LE(rel(dword.gpu_host(), exact_floats(word_exact)), 1e-5) << "word gradient";
    EXPECT_LE(rel(dpos.gpu_host(), exact_floats(pos_exact)), 1e-5) << "position gradient";
    EXPECT_LE(rel(dtype.gpu_host(), exact_floats(type_exact)), 1e-5) << "type gradient";
    // and the same bits again on the GPU
    const std::vector<float> first = dword.gpu_host();
    Twin<float> again(cpu, gpu, randn(static_cast<size_t>(vocab) * c, 21));
    gpu.embedding_backward(dout.g(), d_ids.g(), d_pos.g(), tg, again.g(), dpos.g(), dtype.g(), n, c);
    EXPECT_EQ(again.gpu_host(), first) << "repeat";
  }
  const std::vector<int32_t> rows = {5, 0, 16, 3};
  Twin<int32_t> d_rows(cpu, gpu, rows);
  Twin<float> gathered(cpu, gpu, std::vector<float>(rows.size() * c));
  cpu.gather_rows(word.c(), d_rows.c(), gathered.c(), 4, c);
  gpu.gather_rows(word.g(), d_rows.g(), gathered.g(), 4, c);
  EXPECT_EQ(gathered.gpu_host(), gathered.cpu_host());
  cpu.scatter_add_rows(gathered.c(), d_rows.c(), word.c(), 4, c);
  gpu.scatter_add_rows(gathered.g(), d_rows.g(), word.g(), 4, c);
  EXPECT_EQ(word.gpu_host(), word.cpu_host());
}

TEST_F(CudaOps, EmbeddingsGatherScatterWithRepeatedIds) { check_embeddings(*cpu_, *gpu_, 300, 40, 17, 64); }

// A batch's size (about 256 x 128 tokens): the sort's multi-pass path, runs of thousands of rows
// (a type id shared by half the batch).
TEST_F(CudaOps, EmbeddingGradientsAtBatchSize) { check_embeddings(*cpu_, *gpu_, 100'000, 8, 50, 128); }

// Packed sequences with dropout on the probabilities (none where `dropout` is 0: then no row keys
// are given). `subset`: a few rows query (the last layer under a head; one sequence has no query
// row, so its keys and values get zero gradients), from separate q and kv buffers; else every row
// queries from one fused (n, 3c) qkv buffer. The shape's bound on a sequence's keys is the
// longest sequence plus `slack` (a model gives its batch's longest; the kernels must not rely on it).
void check_attention(Backend& cpu, Backend& gpu, const std::vector<int>& lengths, int heads, int d, bool subset,
                     float dropout = 0.2f, int slack = 0) {
  const int c = heads * d;
  std::vector<int32_t> kv_offsets = {0}, q_offsets = {0};
  std::vector<int32_t> q_rows_of;  // the token row of each query row
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int len = lengths[s], at = kv_offsets.back();
    kv_offsets.push_back(at + len);
    const int queries = !subset ? len : s == 1 ? 0 : std::min(len, 2);
    for (int i = 0; i < queries; ++i) q_rows_of.push_back(at + (subset ? len - 1 - i : i));
    q_offsets.push_back(q_offsets.back() + queries);
  }
  const int n = kv_offsets.back(), nq = q_offsets.back();
  const int max_len = *std::max_element(lengths.begin(), lengths.end());
  std::vector<uint64_t> keys;
  for (int r : q_rows_of) keys.push_back(token_key(5, static_cast<uint64_t>(r)));
  Twin<int32_t> qo(cpu, gpu, q_offsets), kvo(cpu, gpu, kv_offsets);
  Twin<uint64_t> qk(cpu, gpu, keys);
  // subset: q (nq, c) and kv (n, 2c); fused: qkv (n, 3c) holds q, k and v
  Twin<float> q(cpu, gpu, randn(static_cast<size_t>(subset ? nq : n) * (subset ? c : 3 * c), 30)),
      kv(cpu, gpu, randn(static_cast<size_t>(n) * 2 * c, 31));
  const int q_stride = subset ? c : 3 * c, kv_stride = subset ? 2 * c : 3 * c;
  float* kc = subset ? kv.c() : q.c() + c;
  float* kg = subset ? kv.g() : q.g() + c;
  float* vc = subset ? kv.c() + c : q.c() + 2 * c;
  float* vg = subset ? kv.g() + c : q.g() + 2 * c;
  const bool dropped = dropout > 0;
  k::AttentionShape shape_c{qo.c(),  kvo.c(), static_cast<int>(lengths.size()), heads, d, q_stride,       kv_stride,
                            dropout, 99,      dropped ? qk.c() : nullptr,       nq,    n, max_len + slack};
  k::AttentionShape shape_g = shape_c;
  shape_g.q_offsets = qo.g();
  shape_g.kv_offsets = kvo.g();
  shape_g.q_row_keys = dropped ? qk.g() : nullptr;
  int64_t probs_size = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    probs_size += int64_t{heads} * (q_offsets[s + 1] - q_offsets[s]) * lengths[s];
  }
  Twin<float> probs(cpu, gpu, std::vector<float>(probs_size)),
      ctx(cpu, gpu, std::vector<float>(static_cast<size_t>(nq) * c));
  DeviceBuffer<float> scratch(cpu, cpu.attention_scratch_size(max_len)),
      gscratch(gpu, gpu.attention_scratch_size(max_len));
  cpu.attention_forward(q.c(), kc, vc, probs.c(), ctx.c(), scratch.data(), shape_c);
  gpu.attention_forward(q.g(), kg, vg, probs.g(), ctx.g(), gscratch.data(), shape_g);
  EXPECT_LE(rel(probs.gpu_host(), probs.cpu_host()), 1e-5) << "probabilities";
  EXPECT_LE(rel(ctx.gpu_host(), ctx.cpu_host()), 1e-5) << "ctx";
  // gradients: dq in a (rows, q_stride) buffer, dk and dv in (n, kv_stride) (one fused buffer when
  // every row queries), all first filled with noise that must be overwritten
  Twin<float> dctx(cpu, gpu, randn(static_cast<size_t>(nq) * c, 32)),
      dq(cpu, gpu, randn(static_cast<size_t>(subset ? nq : n) * q_stride, 33)),
      dkv(cpu, gpu, randn(static_cast<size_t>(n) * 2 * c, 34));
  float* dkc = subset ? dkv.c() : dq.c() + c;
  float* dkg = subset ? dkv.g() : dq.g() + c;
  float* dvc = subset ? dkv.c() + c : dq.c() + 2 * c;
  float* dvg = subset ? dkv.g() + c : dq.g() + 2 * c;
  cpu.attention_backward(dctx.c(), q.c(), kc, vc, probs.c(), dq.c(), dkc, dvc, scratch.data(), shape_c);
  gpu.attention_backward(dctx.g(), q.g(), kg, vg, probs.g(), dq.g(), dkg, dvg, gscratch.data(), shape_g);
  EXPECT_LE(rel(dq.gpu_host(), dq.cpu_host()), 1e-5) << "dq (and dk, dv when fused)";
  if (subset) {
    const std::vector<float> g = dkv.gpu_host();
    EXPECT_LE(rel(g, dkv.cpu_host()), 1e-5) << "dk, dv";
    // sequence 1 has no query row: its keys and values get exactly zero gradients
    for (int r = kv_offsets[1]; r < kv_offsets[2]; ++r) {
      for (int j = 0; j < 2 * c; ++j) EXPECT_EQ(g[static_cast<size_t>(r) * 2 * c + j], 0.0f) << "row " << r;
    }
  }
  const std::vector<float> first = dq.gpu_host(), first_kv = dkv.gpu_host();
  gpu.attention_backward(dctx.g(), q.g(), kg, vg, probs.g(), dq.g(), dkg, dvg, gscratch.data(), shape_g);
  EXPECT_EQ(dq.gpu_host(), first) << "the same bits again";
  EXPECT_EQ(dkv.gpu_host(), first_kv) << "the same bits again (separate dk, dv)";
}

TEST_F(CudaOps, AttentionEveryRowQueriesFromAFusedBuffer) {
  check_attention(*cpu_, *gpu_, {7, 1, 23, 12, 5}, 4, 16, false);
}
TEST_F(CudaOps, AttentionSomeRowsQuery) { check_attention(*cpu_, *gpu_, {7, 3, 23, 12, 5}, 4, 16, true); }
// BERT-base's head width and a sequence longer than a block's threads
TEST_F(CudaOps, AttentionLongSequences) { check_attention(*cpu_, *gpu_, {300, 40, 130}, 2, 64, false); }
TEST_F(CudaOps, AttentionLongSequencesSomeRowsQuery) { check_attention(*cpu_, *gpu_, {300, 40, 130}, 2, 64, true); }
// An odd head width (shared-memory rows unpadded) and a sequence of 520: a tile's scores take
// over 48 KB of shared memory (the launch must ask for it), the keys stream in several chunks.
TEST_F(CudaOps, AttentionOddHeadWidthOverAChunk) { check_attention(*cpu_, *gpu_, {520, 3, 64}, 3, 33, false); }
TEST_F(CudaOps, AttentionOddHeadWidthOverAChunkSomeRowsQuery) {
  check_attention(*cpu_, *gpu_, {520, 3, 64}, 3, 33, true);
}
// A bound of 700 keys where the longest sequence has 300: a tile's query rows shrink to fit the
// budget (26), most tiles of the grid find no rows.
TEST_F(CudaOps, AttentionBoundAboveTheLongestSequence) {
  check_attention(*cpu_, *gpu_, {300, 40, 130}, 2, 64, false, 0.2f, 400);
}
TEST_F(CudaOps, AttentionWithoutDropout) { check_attention(*cpu_, *gpu_, {7, 3, 23, 12, 5}, 4, 16, true, 0.0f); }
// One wide head: the streamed chunk shrinks to fit (40 rows of 200 floats).
TEST_F(CudaOps, AttentionOneWideHead) { check_attention(*cpu_, *gpu_, {130, 70}, 1, 200, false); }

TEST_F(CudaOps, SoftmaxCrossEntropyAndReductions) {
  const int m = 33, vocab = 3001;
  std::vector<int32_t> labels(m);
  for (int i = 0; i < m; ++i) labels[i] = i % 7 == 3 ? -100 : (i * 131) % vocab;  // some ignored rows
  auto l = twin(labels);
  auto logits = twin(randn(static_cast<size_t>(m) * vocab, 40, 4.0f));
  auto probs = zeros<float>(static_cast<size_t>(m) * vocab);
  cpu_->softmax_rows(logits.c(), probs.c(), m, vocab);
  gpu_->softmax_rows(logits.g(), probs.g(), m, vocab);
  EXPECT_LE(rel(probs.gpu_host(), probs.cpu_host()), 1e-5) << "softmax";
  auto in_place = twin(randn(static_cast<size_t>(m) * vocab, 43, 4.0f));
  cpu_->softmax_rows(in_place.c(), in_place.c(), m, vocab);
  gpu_->softmax_rows(in_place.g(), in_place.g(), m, vocab);
  EXPECT_LE(rel(in_place.gpu_host(), in_place.cpu_host()), 1e-5) << "softmax in place";
  // dlogits written over the logits, as the model does
  const double loss_c = cpu_->softmax_cross_entropy(logits.c(), l.c(), logits.c(), 0.5f, m, vocab);
  const double loss_g = gpu_->softmax_cross_entropy(logits.g(), l.g(), logits.g(), 0.5f, m, vocab);
  EXPECT_NEAR(loss_g, loss_c, 1e-6 * std::fabs(loss_c));
  EXPECT_LE(rel(logits.gpu_host(), logits.cpu_host()), 1e-5) << "dlogits";

  const int64_t n = 1'000'003;
  auto x = twin(randn(n, 41));
  const double ss_c = cpu_->sum_squares(x.c(), n), ss_g = gpu_->sum_squares(x.g(), n);
  EXPECT_NEAR(ss_g, ss_c, 1e-12 * ss_c) << "sums of squares in double";
  EXPECT_EQ(gpu_->first_nonfinite(x.g(), n), -1);
  std::vector<float> bad = randn(n, 42);
  bad[777'777] = NAN;
  bad[900'000] = INFINITY;
  auto b = twin(bad);
  EXPECT_EQ(gpu_->first_nonfinite(b.g(), n), 777'777);
  EXPECT_EQ(cpu_->first_nonfinite(b.c(), n), 777'777);
}

TEST_F(CudaOps, AdamWAndMemory) {
  const int64_t n = 10'001;
  auto p = twin(randn(n, 50)), g = twin(randn(n, 51)), m = twin(randn(n, 52, 0.1f)), v = zeros<float>(n);
  const k::AdamWScalars a{0.999f, 0.9f, 0.999f, 0.1f, 0.001f, 0.01f, 0.0316f, 1e-8f, 0.75f};  // clipped
  for (int step = 0; step < 3; ++step) {
    cpu_->adamw_update(p.c(), g.c(), m.c(), v.c(), n, a);
    gpu_->adamw_update(p.g(), g.g(), m.g(), v.g(), n, a);
  }
  // The same float operations in the same order (no contraction into FMA on either side).
  EXPECT_EQ(p.gpu_host(), p.cpu_host());
  EXPECT_EQ(m.gpu_host(), m.cpu_host());
  EXPECT_EQ(v.gpu_host(), v.cpu_host());
  // copy, fill_zero, allocations zero-filled
  DeviceBuffer<float> fresh(*gpu_, n);
  std::vector<float> h(n, 1.0f);
  fresh.download(h.data(), n);
  EXPECT_EQ(h, std::vector<float>(n, 0.0f));
  gpu_->copy(fresh.data(), p.g(), sizeof(float) * n);
  fresh.download(h.data(), n);
  EXPECT_EQ(h, p.gpu_host());
  gpu_->fill_zero(fresh.data() + 5, sizeof(float) * 10);
  fresh.download(h.data(), n);
  EXPECT_EQ(h[4], p.gpu_host()[4]);
  EXPECT_EQ(h[5], 0.0f);
  EXPECT_EQ(h[14], 0.0f);
  EXPECT_GT(gpu_->gemm_ceiling_gflops(), 0.0);
}

TEST_F(CudaOps, TheConvolutionalFrontEndIsRefusedByName) {
  k::ConvShape shape{nullptr, 1, 8, 1, 4, 3, 3};
  try {
    gpu_->conv2d_scratch_size(shape);
    ADD_FAILURE() << "the CUDA back end accepted a convolution";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("runs on the CPU only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tlm::testing
