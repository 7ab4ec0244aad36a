// Arrays with rows known to be zero (kernels::LiveRows): the CPU ops that skip the dead rows (the
// gradient norm, AdamW, zeroing) give the dense ops' bits, and a classifier trained the trainer's
// way (zero_grad_rows() passed on) equals one trained with dense gradients bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "backend/backend.h"
#include "test_helpers.h"
#include "tlm/optim.h"
#include "tlm/rng.h"

namespace tlm::testing {
namespace {

struct Region {
  int64_t n, offset, rows;
  int cols;
  double live_share;
};

// Shapes that reach every path of the chunk walk: an unaligned offset and width across the sum's
// 65,536-value blocks with a tail, the word embeddings' width from the array's start, a region
// ending the array, and regions all dead or all live.
const Region kRegions[] = {
    {2 * 65536 + 1237, 13, 3000, 37, 0.1},
    {3 * 65536, 0, 256, 768, 0.07},
    {65536 + 100, 65536 + 100 - 320, 40, 8, 0.5},
    {5000, 7, 100, 45, 0.0},
    {5000, 7, 100, 45, 1.0},
};

// x (n) uniform in [-1, 1) with the region's dead rows +0; live (rows) drawn with live_share.
void make_case(const Region& r, uint64_t seed, std::vector<float>& x, std::vector<uint8_t>& live) {
  Rng rng(seed);
  x.resize(static_cast<size_t>(r.n));
  for (float& v : x) v = static_cast<float>(2 * rng.uniform() - 1);
  live.resize(static_cast<size_t>(r.rows));
  for (int64_t row = 0; row < r.rows; ++row) {
    live[row] = rng.uniform() < r.live_share ? 1 : 0;
    if (!live[row]) std::fill_n(x.begin() + r.offset + row * r.cols, r.cols, 0.0f);
  }
}

// The middle value of a dead row between two dead rows (so its eight-value chunk is all dead), or -1.
int64_t dead_middle(const Region& r, const std::vector<uint8_t>& live) {
  for (int64_t row = 1; row + 1 < r.rows; ++row) {
    if (!live[row - 1] && !live[row] && !live[row + 1] && r.cols >= 16) return r.offset + row * r.cols + r.cols / 2;
  }
  return -1;
}

TEST(LiveRows, TheSumOfSquaresSkipsDeadRowsWithTheDenseBits) {
  const std::shared_ptr<Backend> backend = make_backend(Device{}, Precision::kFp32);
  Backend& be = *backend;
  for (const Region& r : kRegions) {
    std::vector<float> x;
    std::vector<uint8_t> live;
    make_case(r, 17, x, live);
    const kernels::LiveRows z{r.offset, r.rows, r.cols, live.data()};
    const double dense = be.sum_squares(x.data(), r.n);
    EXPECT_EQ(be.sum_squares_live(x.data(), r.n, z), dense) << r.n << " " << r.cols;
    // It does skip: a value in a dead chunk is not read (the dense sum sees it).
    const int64_t i = dead_middle(r, live);
    if (i >= 0) {
      x[i] = 1000.0f;
      EXPECT_NE(be.sum_squares(x.data(), r.n), dense);
      EXPECT_EQ(be.sum_squares_live(x.data(), r.n, z), dense) << r.n << " " << r.cols;
    }
  }
}

TEST(LiveRows, AdamWSkipsDeadGradientsWithTheDenseBits) {
  const std::shared_ptr<Backend> backend = make_backend(Device{}, Precision::kFp32);
  Backend& be = *backend;
  const AdamWScalars s{.decay_factor = 0.999f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .one_minus_beta1 = 0.1f,
                       .one_minus_beta2 = 0.001f,
                       .step_size = 0.01f,
                       .bias_correction2_sqrt = 0.0447f,
                       .eps = 1e-8f,
                       .grad_scale = 0.75f};
  for (const Region& r : kRegions) {
    std::vector<float> g, p0, m0, v0;
    std::vector<uint8_t> live;
    make_case(r, 5, g, live);
    std::vector<uint8_t> unused;
    make_case({r.n, 0, 0, 1, 0}, 6, p0, unused);
    make_case({r.n, 0, 0, 1, 0}, 7, m0, unused);
    make_case({r.n, 0, 0, 1, 0}, 8, v0, unused);
    for (float& v : v0) v = v * v;  // second moments are not negative
    const kernels::LiveRows z{r.offset, r.rows, r.cols, live.data()};
    std::vector<float> p = p0, m = m0, v = v0, pl = p0, ml = m0, vl = v0;
    be.adamw_update(p.data(), g.data(), m.data(), v.data(), r.n, s);
    be.adamw_update_live(pl.data(), g.data(), ml.data(), vl.data(), r.n, s, z);
    EXPECT_TRUE(bit_identical(pl.data(), p.data(), r.n)) << r.n << " " << r.cols;
    EXPECT_TRUE(bit_identical(ml.data(), m.data(), r.n));
    EXPECT_TRUE(bit_identical(vl.data(), v.data(), r.n));
    // It does skip: a gradient in a dead row is not read.
    const int64_t i = dead_middle(r, live);
    if (i >= 0) {
      g[i] = 1000.0f;
      pl = p0, ml = m0, vl = v0;
      be.adamw_update_live(pl.data(), g.data(), ml.data(), vl.data(), r.n, s, z);
      EXPECT_TRUE(bit_identical(pl.data(), p.data(), r.n));
    }
  }
}

TEST(LiveRows, ZeroingWritesOnlyTheLiveRows) {
  const std::shared_ptr<Backend> backend = make_backend(Device{}, Precision::kFp32);
  Backend& be = *backend;
  const Region r = kRegions[0];
  std::vector<float> x;
  std::vector<uint8_t> live;
  make_case(r, 3, x, live);
  std::vector<float> want = x;
  for (int64_t row = 0; row < r.rows; ++row) {
    const int64_t at = r.offset + row * r.cols;
    if (live[row]) {
      std::fill_n(want.begin() + at, r.cols, 0.0f);
    } else {  // a value a dead row cannot hold, to see that it is not written
      std::fill_n(x.begin() + at, r.cols, 7.0f);
      std::fill_n(want.begin() + at, r.cols, 7.0f);
    }
  }
  be.zero_live_rows(x.data(), {r.offset, r.rows, r.cols, live.data()});
  EXPECT_EQ(x, want);
}

std::vector<float> host_grads(BertModel& model) {
  std::vector<float> g(static_cast<size_t>(model.num_params()));
  model.backend().download(g.data(), model.grads(), sizeof(float) * g.size());
  return g;
}

// The trainer's step (zero_grad, forward, backward, the norm and AdamW given zero_grad_rows())
// against the same step with every row dense, over batches with different ids, for a plain
// classifier and one with the paper's padded convolutional front-end (its ids are the padded rows').
TEST(LiveRows, AClassifierTrainsAsWithDenseGradients) {
  BertConfig plain = small_config(Head::kClassification), padded = small_conv_config(Head::kClassification);
  padded.conv.pad_to = 16;
  for (BertConfig cfg : {plain, padded}) {
    cfg.vocab_size = 400;  // most word rows are not in a batch
    std::vector<Batch> batches;
    for (uint64_t seed : {1, 2, 3, 4}) batches.push_back(random_batch(cfg, {9, 5, 12}, seed));
    const ModelLimits lim{64, 8, 16, 1};  // sequences of up to 14 tokens, within the padded length
    BertModel sparse(cfg, lim), dense(cfg, lim);
    sparse.init_weights(3);
    dense.init_weights(3);
    AdamW adam_s(sparse.table(), AdamWOptions{.lr = 1e-3}), adam_d(dense.table(), AdamWOptions{.lr = 1e-3});
    for (size_t step = 0; step < batches.size(); ++step) {
      sparse.zero_grad();
      for (float g : host_grads(sparse)) ASSERT_EQ(g, 0.0f) << "zero_grad left a value at step " << step;
      dense.zero_grad();
      for (float g : host_grads(dense)) ASSERT_EQ(g, 0.0f) << "zero_grad left a value at step " << step;
      dense.grads_changed_outside_backward();  // no row known to be zero: every op dense
      for (BertModel* m : {&sparse, &dense}) {
        const ForwardResult f = m->forward(batches[step], true, 50 + step);
        m->backward(static_cast<float>(1.0 / f.count));
      }
      const kernels::LiveRows* z = sparse.zero_grad_rows();
      ASSERT_NE(z, nullptr);
      ASSERT_EQ(dense.zero_grad_rows(), nullptr);
      // The flags: every id of the batch live, most rows dead.
      std::vector<uint8_t> live(static_cast<size_t>(z->rows));
      sparse.backend().download(live.data(), z->live, live.size());
      for (int32_t id : batches[step].ids) ASSERT_TRUE(live[static_cast<size_t>(id)]) << id;
      EXPECT_LT(std::count(live.begin(), live.end(), 1), cfg.vocab_size / 4);
      const GradClip cs = clip_coefficient(sparse.backend(), sparse.grads(), sparse.num_params(), 0.5, z);
      const GradClip cd = clip_coefficient(dense.backend(), dense.grads(), dense.num_params(), 0.5);
      EXPECT_EQ(cs.norm, cd.norm);
      EXPECT_EQ(cs.coefficient, cd.coefficient);
      adam_s.step(sparse.params(), sparse.grads(), 1e-3, cs.coefficient, z);
      adam_d.step(dense.params(), dense.grads(), 1e-3, cd.coefficient);
    }
    const auto ps = sparse.params_to_host(), pd = dense.params_to_host();
    EXPECT_TRUE(bit_identical(ps.data(), pd.data(), static_cast<int64_t>(ps.size())));
    for (auto [a, b] : {std::pair{adam_s.exp_avg_to_host(), adam_d.exp_avg_to_host()},
                        std::pair{adam_s.exp_avg_sq_to_host(), adam_d.exp_avg_sq_to_host()}}) {
      EXPECT_TRUE(bit_identical(a.data(), b.data(), static_cast<int64_t>(a.size())));
    }
    // Two backwards without a zero_grad between (accumulated gradients): zero_grad clears both.
    for (size_t k = 0; k < 2; ++k) {
      const ForwardResult f = sparse.forward(batches[k], true, 9);
      sparse.backward(static_cast<float>(1.0 / f.count));
    }
    sparse.zero_grad();
    for (float g : host_grads(sparse)) ASSERT_EQ(g, 0.0f) << "zero_grad left an accumulated value";
  }
}

// Rows flagged from outside (another process's, before a sum over processes writes them): the
// host flags show them, zero_grad_rows() passes them on, and zero_grad() clears what was written
// there; without the flag those values would outlive zero_grad().
TEST(LiveRows, RowsFlaggedFromOutsideAreClearedByZeroGrad) {
  BertConfig cfg = small_config(Head::kClassification);
  cfg.vocab_size = 400;
  const Batch mine = random_batch(cfg, {9, 5, 12}, 1), theirs = random_batch(cfg, {7, 11}, 2);
  BertModel model(cfg, limits_for(mine, cfg.max_position_embeddings));
  model.init_weights(1);
  model.zero_grad();
  const ForwardResult f = model.forward(mine, true, 1);
  model.backward(static_cast<float>(1.0 / f.count));
  const kernels::LiveRows* z = model.zero_grad_rows();
  ASSERT_NE(z, nullptr);
  ASSERT_NE(model.live_word_rows(), nullptr);
  std::vector<uint8_t> other(static_cast<size_t>(z->rows), 0);
  for (int32_t id : theirs.ids) other[static_cast<size_t>(id)] = 1;
  model.flag_live_word_rows(other.data());
  std::vector<uint8_t> device(static_cast<size_t>(z->rows));
  model.backend().download(device.data(), z->live, device.size());
  for (int32_t id : mine.ids) ASSERT_TRUE(device[static_cast<size_t>(id)] && model.live_word_rows()[id]) << id;
  for (int32_t id : theirs.ids) ASSERT_TRUE(device[static_cast<size_t>(id)] && model.live_word_rows()[id]) << id;
  // what a sum over processes writes at their rows
  std::vector<float> g = host_grads(model);
  for (int32_t id : theirs.ids) g[static_cast<size_t>(z->offset + int64_t{id} * z->cols)] = 1.5f;
  model.backend().upload(model.grads(), g.data(), sizeof(float) * g.size());
  model.zero_grad();
  for (float v : host_grads(model)) ASSERT_EQ(v, 0.0f) << "zero_grad left a value in a row flagged from outside";
  model.grads_changed_outside_backward();  // no row known: flagging is refused
  EXPECT_EQ(model.live_word_rows(), nullptr);
  EXPECT_THROW(model.flag_live_word_rows(other.data()), Error);
}

TEST(LiveRows, TheTiedDecoderLeavesNoRowKnownZero) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  const Batch batch = random_batch(cfg, {9, 5, 12}, 1);
  BertModel model(cfg, limits_for(batch, cfg.max_position_embeddings));
  model.init_weights(1);
  model.zero_grad();
  const ForwardResult f = model.forward(batch, true, 1);
  model.backward(static_cast<float>(1.0 / f.count));
  EXPECT_EQ(model.zero_grad_rows(), nullptr);
  model.zero_grad();
  for (float g : host_grads(model)) ASSERT_EQ(g, 0.0f);
}

}  // namespace
}  // namespace tlm::testing
