// Finite-difference checks of every backward op in kernels.h (ggml test-backend-ops grad mode):
// for y = op(x), the scalar L = sum(y * R) with a fixed random R; the op's backward given
// dy = R must equal (L(x + h) - L(x - h)) / 2h for every input and parameter entry.
// Tolerance: 1e-2 normwise. The forward is fp32, so L carries ~1e-7 relative rounding that the
// difference quotient divides by h = 1e-3 (~1e-3 after cancellation); a wrong formula is off by
// O(1).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/gemm_cpu.h"
#include "kernels/kernels.h"
#include "tlm/rng.h"

namespace tlm {
namespace {

namespace k = kernels;
using gradcheck::dot;
using gradcheck::expect_gradient;
using gradcheck::random_vec;

TEST(GradCheck, Linear) {
  const int n = 5, in = 7, out = 6;
  auto x = random_vec(n * in, 1), w = random_vec(out * in, 2), b = random_vec(out, 3), r = random_vec(n * out, 4);
  std::vector<float> y(n * out);
  auto loss = [&] {
    k::linear_forward(x.data(), w.data(), b.data(), y.data(), n, in, out);
    return dot(y, r);
  };
  std::vector<float> dx(n * in), dw(out * in, 0.0f), db(out, 0.0f);
  k::linear_backward(r.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), n, in, out);
  expect_gradient("linear dx", loss, x, dx);
  expect_gradient("linear dw", loss, w, dw);
  expect_gradient("linear db", loss, b, db);
}

// The linear layer on each GEMM of the CPU back end (kernels/cpu/gemm_cpu.h). fp32 GEMMs get the
// finite-difference check. A bf16 GEMM's forward is piecewise constant in its inputs (they are
// rounded), so finite differences do not apply; what its backward claims instead is the exact
// gradient of the fp32 layer at the rounded operands, with dy rounded too: checked against the
// fp32 backward on those operands (they differ only in summation order: 1e-6).
TEST(GradCheck, LinearOnEveryCpuGemm) {
  const int n = 5, in = 7, out = 6;
  for (const k::GemmMode mode : {k::GemmMode::kOpenBlasFp32, k::GemmMode::kOneDnnFp32}) {
    k::CpuGemm gemm(mode);
    auto x = random_vec(n * in, 1), w = random_vec(out * in, 2), b = random_vec(out, 3), r = random_vec(n * out, 4);
    std::vector<float> y(n * out);
    auto loss = [&] {
      k::linear_forward(gemm, x.data(), w.data(), b.data(), y.data(), n, in, out);
      return dot(y, r);
    };
    std::vector<float> dx(n * in), dw(out * in, 0.0f), db(out, 0.0f);
    k::linear_backward(gemm, r.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), n, in, out);
    const std::string name = k::gemm_mode_name(mode);
    expect_gradient((name + " dx").c_str(), loss, x, dx);
    expect_gradient((name + " dw").c_str(), loss, w, dw);
    expect_gradient((name + " db").c_str(), loss, b, db);
  }
  for (const k::GemmMode mode : {k::GemmMode::kBf16Emulated, k::GemmMode::kBf16OneDnn}) {
    if (!k::CpuGemm::unavailable(mode).empty())
      continue;  // native bf16 needs AVX512_BF16 (test_gemm_bf16.cpp says why)
    k::CpuGemm gemm(mode);
    const auto x = random_vec(n * in, 1), w = random_vec(out * in, 2), r = random_vec(n * out, 4);
    std::vector<float> dx(n * in), dw(out * in, 0.0f), db(out, 0.0f);
    k::linear_backward(gemm, r.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), n, in, out);
    auto rounded = [](std::vector<float> v) {
      k::round_bf16(v.data(), v.data(), static_cast<int64_t>(v.size()));
      return v;
    };
    const auto xr = rounded(x), wr = rounded(w), rr = rounded(r);
    std::vector<float> dx32(n * in), dw32(out * in, 0.0f), db32(out, 0.0f);
    k::linear_backward(rr.data(), xr.data(), wr.data(), dx32.data(), dw32.data(), db32.data(), n, in, out);
    std::vector<float> db_exact(out, 0.0f);  // the bias gradient sums dy itself, unrounded
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < out; ++j) db_exact[j] += r[i * out + j];
    }
    for (int i = 0; i < n * in; ++i) EXPECT_NEAR(dx[i], dx32[i], 1e-6 * (1 + std::fabs(dx32[i]))) << i;
    for (int i = 0; i < out * in; ++i) EXPECT_NEAR(dw[i], dw32[i], 1e-6 * (1 + std::fabs(dw32[i]))) << i;
    for (int j = 0; j < out; ++j) EXPECT_NEAR(db[j], db_exact[j], 1e-6 * (1 + std::fabs(db_exact[j]))) << j;
    // and it is not the fp32 gradient of the unrounded operands
    std::vector<float> dx_plain(n * in), dw_plain(out * in, 0.0f), db_plain(out, 0.0f);
    k::linear_backward(r.data(), x.data(), w.data(), dx_plain.data(), dw_plain.data(), db_plain.data(), n, in, out);
    EXPECT_NE(dx, dx_plain) << k::gemm_mode_name(mode);
  }
}

TEST(GradCheck, LinearAccumulatesIntoParameterGradients) {
  const int n = 3, in = 4, out = 2;
  auto x = random_vec(n * in, 1), w = random_vec(out * in, 2), r = random_vec(n * out, 4);
  std::vector<float> dw1(out * in, 0.0f), db1(out, 0.0f), dw2(out * in, 0.0f), db2(out, 0.0f);
  k::linear_backward(r.data(), x.data(), w.data(), nullptr, dw1.data(), db1.data(), n, in, out);
  k::linear_backward(r.data(), x.data(), w.data(), nullptr, dw2.data(), db2.data(), n, in, out);
  k::linear_backward(r.data(), x.data(), w.data(), nullptr, dw2.data(), db2.data(), n, in, out);
  for (int i = 0; i < out * in; ++i) EXPECT_FLOAT_EQ(dw2[i], 2 * dw1[i]);
  for (int i = 0; i < out; ++i) EXPECT_FLOAT_EQ(db2[i], 2 * db1[i]);
}

TEST(GradCheck, LayerNorm) {
  const int n = 4, c = 9;
  auto x = random_vec(n * c, 5, 2.0), g = random_vec(c, 6), b = random_vec(c, 7), r = random_vec(n * c, 8);
  std::vector<float> y(n * c), mean(n), rstd(n);
  auto loss = [&] {
    k::layernorm_forward(x.data(), g.data(), b.data(), y.data(), mean.data(), rstd.data(), n, c, 1e-12f);
    return dot(y, r);
  };
  loss();
  std::vector<float> dx(n * c), dg(c, 0.0f), dbeta(c, 0.0f);
  k::layernorm_backward(r.data(), x.data(), mean.data(), rstd.data(), g.data(), dx.data(), dg.data(), dbeta.data(), n,
                        c);
  expect_gradient("layernorm dx", loss, x, dx);
  expect_gradient("layernorm dgamma", loss, g, dg);
  expect_gradient("layernorm dbeta", loss, b, dbeta);
}

TEST(GradCheck, GeluAndTanh) {
  const int n = 40;
  auto x = random_vec(n, 9, 2.0), r = random_vec(n, 10);
  std::vector<float> y(n), dx(n);
  auto gelu_loss = [&] {
    k::gelu_forward(x.data(), y.data(), n);
    return dot(y, r);
  };
  k::gelu_backward(r.data(), x.data(), dx.data(), n);
  expect_gradient("gelu", gelu_loss, x, dx);
  auto tanh_loss = [&] {
    k::tanh_forward(x.data(), y.data(), n);
    return dot(y, r);
  };
  tanh_loss();
  k::tanh_backward(r.data(), y.data(), dx.data(), n);
  expect_gradient("tanh", tanh_loss, x, dx);
}

TEST(GradCheck, Dropout) {
  const int rows = 8, cols = 8, n = rows * cols;
  auto x = random_vec(n, 11), r = random_vec(n, 12);
  const uint64_t key = mix_key(5, 1, 2);
  std::vector<uint64_t> row_keys;
  for (int i = 0; i < rows; ++i) row_keys.push_back(token_key(3, static_cast<uint64_t>(i)));
  std::vector<float> y(n);
  auto loss = [&] {
    y = x;
    k::dropout_apply(y.data(), rows, cols, 0.3f, key, row_keys.data());
    return dot(y, r);
  };
  std::vector<float> dx = r;  // backward: the same mask and scale applied to dy
  k::dropout_apply(dx.data(), rows, cols, 0.3f, key, row_keys.data());
  expect_gradient("dropout", loss, x, dx);
}

TEST(GradCheck, Embeddings) {
  const int n = 6, c = 5, vocab = 4, npos = 7, ntype = 2;
  const std::vector<int32_t> ids{1, 3, 1, 0, 2, 1}, pos{0, 1, 2, 0, 1, 2}, types{0, 0, 1, 1, 0, 1};
  auto word = random_vec(vocab * c, 13), p = random_vec(npos * c, 14), t = random_vec(ntype * c, 15),
       r = random_vec(n * c, 16);
  std::vector<float> y(n * c);
  auto loss = [&] {
    k::embedding_forward(ids.data(), pos.data(), types.data(), word.data(), p.data(), t.data(), y.data(), n, c);
    return dot(y, r);
  };
  std::vector<float> dword(vocab * c, 0.0f), dpos(npos * c, 0.0f), dtype(ntype * c, 0.0f);
  k::embedding_backward(r.data(), ids.data(), pos.data(), types.data(), dword.data(), dpos.data(), dtype.data(), n, c);
  expect_gradient("embedding dword", loss, word, dword);
  expect_gradient("embedding dpos", loss, p, dpos);
  expect_gradient("embedding dtype", loss, t, dtype);
}

// Full layer: queries at every row of a fused (n, 3c) qkv buffer. Subset: queries at some rows
// only (the last layer under a head), in their own (r, c) buffer, keys/values in (n, 2c).
void check_attention(float dropout_p, bool query_subset) {
  const std::vector<int32_t> offsets{0, 5, 8, 14};          // three sequences of 5, 3 and 6 tokens
  const std::vector<int32_t> q_subset_offsets{0, 2, 2, 5};  // 2, 0 and 3 query rows
  const int heads = 2, d = 3, c = heads * d, n = offsets.back();
  const int q_rows = query_subset ? q_subset_offsets.back() : n;
  const int kv_width = query_subset ? 2 * c : 3 * c;
  std::vector<uint64_t> q_keys;
  for (int i = 0; i < n; ++i) q_keys.push_back(token_key(7, static_cast<uint64_t>(i)));
  k::AttentionShape shape{query_subset ? q_subset_offsets.data() : offsets.data(),
                          offsets.data(),
                          3,
                          heads,
                          d,
                          query_subset ? c : 3 * c,
                          kv_width,
                          dropout_p,
                          mix_key(3, 4, 5),
                          q_keys.data()};
  auto kv = random_vec(int64_t{n} * kv_width, 17), r = random_vec(int64_t{q_rows} * c, 18);
  auto qsep = random_vec(int64_t{q_rows} * c, 19);
  const int k_col = query_subset ? 0 : c, v_col = k_col + c;
  auto qptr = [&]() -> float* { return query_subset ? qsep.data() : kv.data(); };
  std::vector<float> probs(k::attention_probs_size(shape)), ctx(int64_t{q_rows} * c);
  std::vector<float> scratch(k::attention_scratch_size(6, 256));
  auto loss = [&] {
    k::attention_forward(qptr(), kv.data() + k_col, kv.data() + v_col, probs.data(), ctx.data(), scratch.data(), shape);
    return dot(ctx, r);
  };
  loss();
  std::vector<float> dkv(kv.size(), 0.0f), dq_sep(qsep.size(), 0.0f);
  float* dq = query_subset ? dq_sep.data() : dkv.data();
  k::attention_backward(r.data(), qptr(), kv.data() + k_col, kv.data() + v_col, probs.data(), dq, dkv.data() + k_col,
                        dkv.data() + v_col, scratch.data(), shape);
  const std::string what =
      std::string("attention") + (dropout_p > 0 ? " with dropout" : "") + (query_subset ? " (query subset)" : "");
  expect_gradient((what + " d(q,k,v)").c_str(), loss, kv, dkv);
  if (query_subset) expect_gradient((what + " dq").c_str(), loss, qsep, dq_sep);
}

TEST(GradCheck, Attention) { check_attention(0.0f, false); }
TEST(GradCheck, AttentionWithDropout) { check_attention(0.25f, false); }
TEST(GradCheck, AttentionQuerySubset) { check_attention(0.0f, true); }
TEST(GradCheck, AttentionQuerySubsetWithDropout) { check_attention(0.25f, true); }

// Absorbed attention (kernels.h): finite differences for every input, and the outputs and
// gradients of attention_forward/backward on keys and values projected from x, K = x Wk^T + bk
// and V = x Wv^T + bv (to fp32 rounding: the two paths sum in different orders), whose key-bias
// gradient is ~0 where the absorbed path adds none. One sequence has no query row.
void check_absorbed_attention(float dropout_p) {
  const std::vector<int32_t> offsets{0, 5, 8, 14}, q_offsets{0, 2, 2, 5};
  const int heads = 2, d = 3, c = heads * d, n = offsets.back(), r = q_offsets.back();
  std::vector<uint64_t> q_keys;
  for (int i = 0; i < r; ++i) q_keys.push_back(token_key(7, static_cast<uint64_t>(i)));
  const k::AttentionShape shape{q_offsets.data(), offsets.data(), 3, heads, d, c, c, dropout_p,
                                mix_key(3, 4, 5), q_keys.data()};
  auto x = random_vec(int64_t{n} * c, 21), q = random_vec(int64_t{r} * c, 22), rr = random_vec(int64_t{r} * c, 23);
  auto wk = random_vec(c * c, 24, 0.5), wv = random_vec(c * c, 25, 0.5), bv = random_vec(c, 26), bk = random_vec(c, 27);
  std::vector<float> probs(k::attention_probs_size(shape)), ctx(int64_t{r} * c);
  std::vector<float> saved(k::absorbed_attention_saved_size(r, heads, c));
  std::vector<float> scratch(k::absorbed_attention_scratch_size(r, 3, 6, heads, c, 256));
  auto loss = [&] {
    k::absorbed_attention_forward(q.data(), x.data(), wk.data(), wv.data(), bv.data(), probs.data(), saved.data(),
                                  ctx.data(), scratch.data(), shape);
    return dot(ctx, rr);
  };
  loss();
  const std::vector<float> ctx_absorbed = ctx, probs_absorbed = probs;
  // dq, dx overwritten (start as garbage); dWk, dWv, dbv accumulated (start at 0.5: the increment
  // is checked)
  std::vector<float> dq(q.size(), 7.0f), dx(x.size(), 7.0f), dwk(wk.size(), 0.5f), dwv(wv.size(), 0.5f),
      dbv(bv.size(), 0.5f);
  k::absorbed_attention_backward(rr.data(), q.data(), x.data(), wk.data(), wv.data(), bv.data(), probs.data(),
                                 saved.data(), dq.data(), dx.data(), dwk.data(), dwv.data(), dbv.data(), scratch.data(),
                                 shape);
  for (auto* accumulated : {&dwk, &dwv, &dbv}) {
    for (float& value : *accumulated) value -= 0.5f;
  }
  const std::string what = std::string("absorbed attention") + (dropout_p > 0 ? " with dropout" : "");
  expect_gradient((what + " dq").c_str(), loss, q, dq);
  expect_gradient((what + " dx").c_str(), loss, x, dx);
  expect_gradient((what + " dWk").c_str(), loss, wk, dwk);
  expect_gradient((what + " dWv").c_str(), loss, wv, dwv);
  expect_gradient((what + " dbv").c_str(), loss, bv, dbv);

  // The projected path: keys and values (n, 2c), then the plain kernels.
  std::vector<float> kv(int64_t{n} * 2 * c), kk(int64_t{n} * c), vv(int64_t{n} * c);
  k::linear_forward(x.data(), wk.data(), bk.data(), kk.data(), n, c, c);
  k::linear_forward(x.data(), wv.data(), bv.data(), vv.data(), n, c, c);
  for (int i = 0; i < n; ++i) {
    std::copy_n(kk.data() + i * c, c, kv.data() + i * 2 * c);
    std::copy_n(vv.data() + i * c, c, kv.data() + i * 2 * c + c);
  }
  k::AttentionShape projected = shape;
  projected.kv_stride = 2 * c;
  std::vector<float> probs_ref(probs.size()), ctx_ref(ctx.size()), att_scratch(k::attention_scratch_size(6, 256));
  k::attention_forward(q.data(), kv.data(), kv.data() + c, probs_ref.data(), ctx_ref.data(), att_scratch.data(),
                       projected);
  std::vector<float> dq_ref(q.size()), dkv(kv.size()), dk(kk.size()), dv(vv.size()), dx_ref(x.size()), dx_v(x.size());
  std::vector<float> dwk_ref(wk.size(), 0.0f), dwv_ref(wv.size(), 0.0f), dbk_ref(c, 0.0f), dbv_ref(c, 0.0f);
  k::attention_backward(rr.data(), q.data(), kv.data(), kv.data() + c, probs_ref.data(), dq_ref.data(), dkv.data(),
                        dkv.data() + c, att_scratch.data(), projected);
  for (int i = 0; i < n; ++i) {
    std::copy_n(dkv.data() + i * 2 * c, c, dk.data() + i * c);
    std::copy_n(dkv.data() + i * 2 * c + c, c, dv.data() + i * c);
  }
  k::linear_backward(dk.data(), x.data(), wk.data(), dx_ref.data(), dwk_ref.data(), dbk_ref.data(), n, c, c);
  k::linear_backward(dv.data(), x.data(), wv.data(), dx_v.data(), dwv_ref.data(), dbv_ref.data(), n, c, c);
  for (size_t i = 0; i < dx_ref.size(); ++i) dx_ref[i] += dx_v[i];
  auto expect_close = [&](const char* name, const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size()) << name;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    }
    EXPECT_GT(scale, 0.0) << what << " " << name;
    // fp32 sums of a few dozen terms in another order: ~1e-6 relative; a wrong term is O(1)
    EXPECT_LE(worst, 1e-5 * scale) << what << " " << name << ": max |absorbed - projected| " << worst;
  };
  expect_close("probs", probs_absorbed, probs_ref);
  expect_close("ctx", ctx_absorbed, ctx_ref);
  expect_close("dq", dq, dq_ref);
  expect_close("dx", dx, dx_ref);
  expect_close("dWk", dwk, dwk_ref);
  expect_close("dWv", dwv, dwv_ref);
  expect_close("dbv", dbv, dbv_ref);
  double bias_grad = 0, dbv_scale = 0;
  for (int i = 0; i < c; ++i) {
    bias_grad = std::max(bias_grad, std::fabs(static_cast<double>(dbk_ref[i])));
    dbv_scale = std::max(dbv_scale, std::fabs(static_cast<double>(dbv_ref[i])));
  }
  EXPECT_LE(bias_grad, 1e-5 * dbv_scale) << what << ": the projected path's key-bias gradient is not ~0";
}

TEST(GradCheck, AbsorbedAttention) { check_absorbed_attention(0.0f); }
TEST(GradCheck, AbsorbedAttentionWithDropout) { check_absorbed_attention(0.25f); }

TEST(GradCheck, SoftmaxCrossEntropy) {
  const int m = 4, kk = 7;
  auto logits = random_vec(m * kk, 19, 3.0);
  const std::vector<int32_t> labels{2, 0, -100, 6};  // -100: ignored row
  auto loss = [&] { return k::softmax_cross_entropy(logits.data(), labels.data(), nullptr, 0.0f, m, kk); };
  std::vector<float> dl(m * kk);
  k::softmax_cross_entropy(logits.data(), labels.data(), dl.data(), 1.0f, m, kk);
  for (int j = 0; j < kk; ++j) EXPECT_EQ(dl[2 * kk + j], 0.0f) << "ignored row must have no gradient";
  expect_gradient("cross-entropy dlogits", loss, logits, dl);
  // In place (dlogits = logits, as the model calls it): the same loss, bit for bit, with and
  // without the gradient, and the same gradient.
  const double want = loss();
  EXPECT_EQ(k::softmax_cross_entropy(logits.data(), labels.data(), dl.data(), 1.0f, m, kk), want);
  std::vector<float> in_place = logits;
  EXPECT_EQ(k::softmax_cross_entropy(in_place.data(), labels.data(), in_place.data(), 1.0f, m, kk), want);
  EXPECT_EQ(in_place, dl);
}

// Training's split cross-entropy (the forward keeps the exponentials, the backward rescales them
// and adds the bias gradient's column sums) gives the fused op's loss and gradient and
// linear_backward's bias gradient, bit for bit: over rows and columns that are not multiples of
// the vector width or of the column blocks, an ignored row, and a scale.
TEST(GradCheck, SplitCrossEntropyHasTheFusedBits) {
  const int m = 13, kk = 203;
  const auto logits = random_vec(m * kk, 23, 4.0);
  std::vector<int32_t> labels(m);
  for (int i = 0; i < m; ++i) labels[i] = (i * 37) % kk;
  labels[5] = -100;
  const float scale = 0.37f;
  std::vector<float> dl(m * kk);
  const double want_loss = k::softmax_cross_entropy(logits.data(), labels.data(), nullptr, 0.0f, m, kk);
  k::softmax_cross_entropy(logits.data(), labels.data(), dl.data(), scale, m, kk);
  const auto db0 = random_vec(kk, 29, 1.0);
  std::vector<float> want_db = db0;
  for (int i = 0; i < m; ++i) {  // linear_backward's bias gradient: column sums added in row order
    for (int c = 0; c < kk; ++c) want_db[c] += dl[i * kk + c];
  }

  std::vector<float> saved(m * kk, -1.0f), in = logits, db = db0;
  std::vector<double> sums(m);
  EXPECT_EQ(k::softmax_cross_entropy_forward(in.data(), labels.data(), saved.data(), sums.data(), m, kk), want_loss);
  EXPECT_EQ(in, logits) << "the logits are only read";
  k::softmax_cross_entropy_backward(saved.data(), labels.data(), sums.data(), scale, m, kk, db.data());
  EXPECT_EQ(saved, dl);
  EXPECT_EQ(db, want_db);
  // Without db: the same gradient, db left alone.
  std::vector<float> again(m * kk, -1.0f);
  k::softmax_cross_entropy_forward(logits.data(), labels.data(), again.data(), sums.data(), m, kk);
  k::softmax_cross_entropy_backward(again.data(), labels.data(), sums.data(), scale, m, kk, nullptr);
  EXPECT_EQ(again, dl);
}

}  // namespace
}  // namespace tlm
