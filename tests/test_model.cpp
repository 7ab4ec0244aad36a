// Model-level properties: determinism, gradient accumulation, dropout, impossible configs.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/kernels.h"
#include "test_helpers.h"
#include "tlm/check.h"
#include "tlm/dataset.h"
#include "tlm/optim.h"
#include "tlm/rng.h"

namespace tlm::testing {
namespace {

// Where the last layer absorbs its keys and values (model.cpp's last_layer_absorbs): always under a
// classification head; under MLM where f (1 + heads len / c), doubled in bf16, is below 0.75 (f the
// share of rows that query). Shapes of the rule's measurements: the demo's one-layer pre-training
// absorbs in bf16, bert1's MLM only in fp32; and never on a back end without the op.
TEST(Model, TheLastLayerAbsorbsWhereItPays) {
  auto made = [](int hidden, int heads, Head head, Precision precision, int len, int targets) {
    BertConfig cfg = small_config(head);
    cfg.hidden_size = hidden;
    cfg.num_attention_heads = heads;
    cfg.max_position_embeddings = 128;
    const ModelLimits lim{.max_tokens = 32 * len, .max_seqs = 32, .max_seq_len = len, .max_targets = targets};
    const kernels::GemmMode gemm =
        precision == Precision::kBf16 ? kernels::GemmMode::kBf16Emulated : kernels::GemmMode::kOpenBlasFp32;
    return BertModel(cfg, lim, make_cpu_backend(precision, gemm)).absorbs_last_layer();
  };
  // demo-like: c 128, 2 heads, 32 tokens, 18% of rows masked: 0.18 * 1.5 = 0.27
  EXPECT_TRUE(made(128, 2, Head::kMaskedLM, Precision::kBf16, 32, 184));
  EXPECT_TRUE(made(128, 2, Head::kMaskedLM, Precision::kFp32, 32, 184));
  // bert1-like: c 96 and 12 heads over 16 tokens give bert1's 1 + heads len / c = 3; 18% masked: 0.54
  EXPECT_TRUE(made(96, 12, Head::kMaskedLM, Precision::kFp32, 16, 92));
  EXPECT_FALSE(made(96, 12, Head::kMaskedLM, Precision::kBf16, 16, 92));
  EXPECT_TRUE(made(96, 12, Head::kClassification, Precision::kBf16, 16, 1));
  // a back end without absorbed attention
  BertConfig cls = small_config(Head::kClassification);
  const ModelLimits lim{.max_tokens = 64, .max_seqs = 4, .max_seq_len = 16, .max_targets = 1};
  EXPECT_FALSE(BertModel(cls, lim, make_cpu_backend(Precision::kFp32, kernels::GemmMode::kOpenBlasFp32, false))
                   .absorbs_last_layer());
}

// Trains `steps` AdamW steps with dropout on; returns the final parameters.
std::vector<float> train_steps(const BertConfig& cfg, const Batch& batch, int steps) {
  BertModel model(cfg, limits_for(batch, 16));
  model.init_weights(42);
  AdamW adam(model.table(), AdamWOptions{.lr = 1e-3});
  for (int s = 0; s < steps; ++s) {
    model.zero_grad();
    const ForwardResult f = model.forward(batch, true, 1000 + s);
    model.backward(static_cast<float>(1.0 / f.count));
    clip_grad_norm(model.backend(), model.grads(), model.num_params(), 1.0);
    adam.step(model.params(), model.grads(), 1e-3);
  }
  return model.params_to_host();
}

TEST(Model, SameSeedAndThreadsGiveBitIdenticalWeights) {
  for (Head head : {Head::kMaskedLM, Head::kClassification}) {
    const BertConfig cfg = small_config(head);
    const Batch batch = random_batch(cfg, {16, 9, 12, 5}, 7);
    const auto a = train_steps(cfg, batch, 5);
    const auto b = train_steps(cfg, batch, 5);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_TRUE(bit_identical(a.data(), b.data(), static_cast<int64_t>(a.size())));
    // ... and the steps really changed something, so the comparison is not vacuous.
    BertModel fresh(cfg, limits_for(batch, 16));
    fresh.init_weights(42);
    EXPECT_FALSE(bit_identical(a.data(), fresh.params(), fresh.num_params()));
  }
}

// Any split of a batch computes the same step: shards of 2, 1 and 3 sequences, each scaled by the
// whole batch's target count, sum to the whole batch's gradient, with dropout on (its masks
// follow sequence ids and positions, not the packing). What data-parallel training relies on.
TEST(Model, ShardsOfABatchComputeTheSameStepWithDropout) {
  for (Head head : {Head::kMaskedLM, Head::kClassification}) {
    BertConfig cfg = small_config(head);
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.2f;
    Batch full = random_batch(cfg, {16, 9, 12, 5, 7, 11}, 3);
    full.sequence_ids = {40, 3, 17, 8, 21, 5};  // their indices in some data set
    BertModel one(cfg, limits_for(full, 16)), acc(cfg, limits_for(full, 16));
    one.init_weights(5);
    acc.init_weights(5);
    one.zero_grad();
    const ForwardResult f = one.forward(full, true, 9);
    one.backward(static_cast<float>(1.0 / f.count));
    acc.zero_grad();
    double loss_sum = 0;
    Batch shard;
    for (auto [s0, s1] : {std::pair{0, 2}, std::pair{2, 3}, std::pair{3, 6}}) {
      shard_of_batch(full, s0, s1, shard);
      loss_sum += acc.forward(shard, true, 9).loss_sum;
      acc.backward(static_cast<float>(1.0 / f.count));  // the global scale, passed in
    }
    EXPECT_NEAR(loss_sum, f.loss_sum, 1e-5 * f.loss_sum);
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < one.num_params(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(one.grads()[i] - acc.grads()[i])));
      max_ref = std::max(max_ref, static_cast<double>(std::fabs(one.grads()[i])));
    }
    EXPECT_GT(max_ref, 0.0);
    EXPECT_LE(max_diff, 1e-5 * max_ref);
    // And the dropout really is on: another dropout seed gives another loss.
    EXPECT_NE(one.forward(full, true, 10).loss_sum, f.loss_sum);
  }
}

// The whole model in training mode, dropout on everywhere (embeddings, attention probabilities,
// attention and FFN outputs, the pooler): backward equals central differences of the loss for
// entries of every parameter tensor, so dropout is applied at the same places with the same masks
// in both passes. The golden tests against PyTorch run without dropout; this covers the rest.
// Tolerance as the kernel checks: 1e-2 normwise (fp32 loss, h = 1e-3).
TEST(Model, TrainingModeGradientsMatchFiniteDifferencesWithDropout) {
  std::vector<BertConfig> configs;
  for (Head head : {Head::kMaskedLM, Head::kClassification}) {
    configs.push_back(small_config(head));
    configs.push_back(small_conv_config(head));  // the front-end on packed sequences
    configs.push_back(small_conv_config(head));
    configs.back().conv.pad_to = 16;  // and on the paper's padded batches (dropout on [PAD] rows too)
  }
  for (BertConfig cfg : configs) {
    const Head head = cfg.head;
    SCOPED_TRACE(cfg.conv.enabled() ? (cfg.conv.pad_to > 0 ? "convolutional, padded" : "convolutional") : "plain");
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.2f;
    Batch batch = random_batch(cfg, {9, 6, 11}, 4);
    batch.sequence_ids = {12, 5, 30};
    BertModel model(cfg, limits_for(batch, 16));
    model.init_weights(3);
    const uint64_t dropout_seed = 77;
    model.zero_grad();
    model.forward(batch, true, dropout_seed);
    model.backward(1.0f);
    const std::vector<float> analytic(model.grads(), model.grads() + model.num_params());
    double max_diff = 0, max_ref = 0;
    int checked = 0;
    Rng pick(9);
    for (const auto& e : model.table().entries()) {
      for (int t = 0; t < 3; ++t) {
        int64_t i = e.offset + static_cast<int64_t>(pick.below(static_cast<uint64_t>(e.size)));
        if (e.name == "bert.embeddings.word_embeddings.weight") {  // a row the batch uses
          i = e.offset + int64_t{batch.ids[t]} * cfg.hidden_size + t;
        }
        float& w = model.params()[i];
        const float saved = w;
        const double h = 1e-3;
        w = saved + static_cast<float>(h);
        const double up = model.forward(batch, true, dropout_seed).loss_sum;
        w = saved - static_cast<float>(h);
        const double down = model.forward(batch, true, dropout_seed).loss_sum;
        w = saved;
        const double numeric = (up - down) / (2 * h);
        max_diff = std::max(max_diff, std::fabs(numeric - analytic[i]));
        max_ref = std::max(max_ref, std::fabs(numeric));
        ++checked;
      }
    }
    EXPECT_GT(checked, 40);
    EXPECT_GT(max_ref, 0.0);
    EXPECT_LE(max_diff, 1e-2 * max_ref) << (head == Head::kMaskedLM ? "mlm" : "cls") << ": max |numeric - analytic| "
                                        << max_diff << " of " << max_ref;
  }
}

TEST(Model, DropoutIsSeededAndOnlyInTraining) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  const Batch batch = random_batch(cfg, {16, 10}, 1);
  BertModel model(cfg, limits_for(batch, 16));
  model.init_weights(1);
  const double eval1 = model.forward(batch, false, 1).loss_sum;
  const double eval2 = model.forward(batch, false, 2).loss_sum;
  const double train1 = model.forward(batch, true, 1).loss_sum;
  const double train1_again = model.forward(batch, true, 1).loss_sum;
  const double train2 = model.forward(batch, true, 2).loss_sum;
  EXPECT_EQ(eval1, eval2);
  EXPECT_EQ(train1, train1_again);
  EXPECT_NE(train1, eval1);
  EXPECT_NE(train1, train2);
}

TEST(Model, DropoutKeepsTheRightShareAndScale) {
  const int rows = 2000, cols = 100;
  std::vector<float> x(rows * cols, 1.0f);
  std::vector<uint64_t> row_keys;
  for (int r = 0; r < rows; ++r) row_keys.push_back(token_key(static_cast<uint64_t>(r / 50), r % 50));
  kernels::dropout_apply(x.data(), rows, cols, 0.1f, mix_key(1, 2, 3), row_keys.data());
  int64_t kept = 0;
  double sum = 0;
  for (float v : x) {
    if (v != 0.0f) {
      ++kept;
      EXPECT_FLOAT_EQ(v, 1.0f / 0.9f);
    }
    sum += v;
  }
  const double share = static_cast<double>(kept) / x.size();
  EXPECT_NEAR(share, 0.9, 0.004);  // ~6 standard deviations of a binomial share at n = 2e5
  EXPECT_NEAR(sum / x.size(), 1.0, 0.005);
}

// Weights frozen for inference may be kept by the back end in bf16 (converted once): the same
// probabilities as converting them at every GEMM, never stale after the weights change, and an
// optimizer step on them is refused; a frozen model's end leaves its back end unfrozen.
TEST(Model, FrozenWeightsPredictAsUnfrozenAndNeverGoStale) {
  const BertConfig cfg = small_config(Head::kClassification);
  const Batch batch = random_batch(cfg, {16, 9, 12, 5}, 7);
  const ModelLimits lim{batch.num_tokens(), batch.num_seqs(), 16, 0};
  auto probs = [&](BertModel& m) {
    std::vector<float> p(static_cast<size_t>(batch.num_seqs()) * cfg.num_labels());
    m.probabilities(batch, p.data());
    return p;
  };
  for (const Precision precision : {Precision::kBf16, Precision::kFp32}) {
    const auto backend = make_backend(Device{}, precision);
    BertModel plain(cfg, lim, make_backend(Device{}, precision));
    plain.init_weights(3);
    const std::vector<float> expected = probs(plain);
    {
      BertModel model(cfg, lim, backend);
      model.init_weights(3);
      model.freeze_weights();
      EXPECT_EQ(probs(model), expected);
      EXPECT_EQ(probs(model), expected);  // the kept copies serve again
      // New weights: the kept copies go (a stale bf16 weight would keep the old probabilities).
      plain.init_weights(4);
      model.init_weights(4);
      model.freeze_weights();
      const std::vector<float> changed = probs(plain);
      EXPECT_NE(changed, expected);
      EXPECT_EQ(probs(model), changed);
      AdamW adam(model.table(), AdamWOptions{}, model.shared_backend());
      EXPECT_THROW(adam.step(model.params(), model.grads(), 1e-3), Error);
    }
    // The frozen model is gone: a model on the same back end (maybe at the same address) trains.
    BertModel next(cfg, lim, backend);
    next.init_weights(5);
    AdamW adam(next.table(), AdamWOptions{}, next.shared_backend());
    EXPECT_NO_THROW(adam.step(next.params(), next.grads(), 1e-3));
  }
}

TEST(Model, InitFollowsHuggingFace) {
  const BertConfig cfg = small_config(Head::kClassification);
  BertModel model(cfg, {8, 1, 8, 1});
  model.init_weights(3);
  for (const auto& e : model.table().entries()) {
    const float* p = model.params() + e.offset;
    if (e.name.find("LayerNorm.weight") != std::string::npos) {
      for (int64_t i = 0; i < e.size; ++i) ASSERT_EQ(p[i], 1.0f) << e.name;
    } else if (e.name.ends_with("bias")) {
      for (int64_t i = 0; i < e.size; ++i) ASSERT_EQ(p[i], 0.0f) << e.name;
    } else if (e.size > 500) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < e.size; ++i) {
        s += p[i];
        s2 += double{p[i]} * p[i];
      }
      const double mean = s / e.size, sd = std::sqrt(s2 / e.size - mean * mean);
      EXPECT_NEAR(sd, cfg.initializer_range, 0.15 * cfg.initializer_range) << e.name;
      EXPECT_NEAR(mean, 0.0, 0.2 * cfg.initializer_range) << e.name;
    }
  }
  const float* pad = model.param("bert.embeddings.word_embeddings.weight") + cfg.pad_token_id * cfg.hidden_size;
  for (int i = 0; i < cfg.hidden_size; ++i) EXPECT_EQ(pad[i], 0.0f) << "padding row must be zero";
}

void expect_invalid(BertConfig cfg, const std::string& fragment) {
  try {
    cfg.validate();
    FAIL() << "config accepted, expected an error mentioning: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Config, ImpossibleConfigsAreClearErrors) {
  BertConfig c = small_config(Head::kMaskedLM);
  c.hidden_size = 25;
  expect_invalid(c, "hidden_size = 25 is not divisible by num_attention_heads = 3");
  c = small_config(Head::kMaskedLM);
  c.num_hidden_layers = 0;
  expect_invalid(c, "num_hidden_layers = 0");
  c = small_config(Head::kMaskedLM);
  c.vocab_size = 50;
  expect_invalid(c, "vocab_size = 50 is smaller than the special token ids");
  c = small_config(Head::kMaskedLM);
  c.hidden_act = "relu";
  expect_invalid(c, "hidden_act");
  c = small_config(Head::kClassification);
  c.labels = {"only"};
  expect_invalid(c, "at least 2 labels");
  c = small_config(Head::kMaskedLM);
  c.hidden_dropout_prob = 1.0f;
  expect_invalid(c, "hidden_dropout_prob");
}

TEST(Config, ConvolutionalFrontEndIsCheckedAndRoundTrips) {
  BertConfig c = small_conv_config(Head::kMaskedLM);
  c.conv.kernel_hidden = c.hidden_size + 1;
  expect_invalid(c, "conv kernel along the hidden units = 25");
  c = small_conv_config(Head::kMaskedLM);
  c.conv.channels = 0;
  expect_invalid(c, "conv channels = 0");
  c = small_conv_config(Head::kMaskedLM);
  c.conv.layers = 9;
  expect_invalid(c, "conv layers = 9");

  c = small_conv_config(Head::kClassification);
  c.conv = {3, 16, 3, 32};
  const nlohmann::json j = c.to_hf_json();
  EXPECT_EQ(j["tlm"]["conv"], (nlohmann::json{{"layers", 3}, {"kernel", {16, 3}}, {"channels", 32}}));
  const BertConfig back = BertConfig::from_hf_json(j, "test");
  EXPECT_EQ(back.to_hf_json(), j);
  EXPECT_FALSE(small_config(Head::kMaskedLM).to_hf_json()["tlm"].contains("conv"));  // plain: unchanged
  for (const nlohmann::json& v : {nlohmann::json(2.5), nlohmann::json(int64_t{1} << 40), nlohmann::json("2")}) {
    nlohmann::json wrong = j;
    wrong["tlm"]["conv"]["layers"] = v;  // a fraction, a value that would wrap, a string
    EXPECT_THROW(BertConfig::from_hf_json(wrong, "test"), Error) << v.dump();
    wrong = j;
    wrong["num_hidden_layers"] = v;
    EXPECT_THROW(BertConfig::from_hf_json(wrong, "test"), Error) << v.dump();
  }
  nlohmann::json bad = j;
  bad["tlm"]["conv"]["kernel"] = {3};
  EXPECT_THROW(BertConfig::from_hf_json(bad, "test"), Error);
  bad["tlm"]["conv"] = "yes";
  EXPECT_THROW(BertConfig::from_hf_json(bad, "test"), Error);

  EXPECT_EQ(parse_conv_kernel("3"), std::make_pair(3, 3));
  EXPECT_EQ(parse_conv_kernel("16,3"), std::make_pair(16, 3));
  for (const char* text : {"", "0", "3x3", "3,", ",3", "3,3,3", "-1", "99999"}) {
    EXPECT_THROW(parse_conv_kernel(text), Error) << text;
  }
  EXPECT_EQ(conv_kernel_text(3, 3), "3");
  EXPECT_EQ(conv_kernel_text(16, 3), "16,3");
  const BertConfig paper = BertConfig::named("bert1-conv2-k16x3-d64");
  EXPECT_EQ(paper.conv.layers, 2);
  EXPECT_EQ(paper.conv.kernel_seq, 16);
  EXPECT_EQ(paper.conv.kernel_hidden, 3);
  EXPECT_EQ(paper.conv.channels, 64);
  EXPECT_EQ(BertConfig::named("bert1-conv3-k3-d32").conv.channels, 32);
}

TEST(Config, HuggingFaceJsonRoundTrip) {
  BertConfig c = small_config(Head::kClassification);
  c.classifier_dropout = 0.2f;
  const BertConfig back = BertConfig::from_hf_json(c.to_hf_json(), "test");
  EXPECT_EQ(back.to_hf_json(), c.to_hf_json());
  EXPECT_EQ(back.labels, c.labels);
  EXPECT_EQ(c.to_hf_json()["architectures"][0], "BertForSequenceClassification");
  EXPECT_EQ(c.to_hf_json()["id2label"]["1"], "b");
}

TEST(Model, OversizedBatchIsAClearError) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  const Batch small = random_batch(cfg, {8}, 1);
  const Batch big = random_batch(cfg, {8, 8}, 1);
  BertModel model(cfg, limits_for(small, 8));
  model.init_weights(1);
  EXPECT_THROW(model.forward(big, false, 0), Error);
  Batch bad = small;
  bad.ids[2] = cfg.vocab_size;
  try {
    model.forward(bad, false, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
}

// A training forward keeps the cross-entropy's exponentials for backward (and backward adds the
// decoder bias gradient as it rescales them); an inference forward does not, and backward then
// starts from the logits. Without dropout both are the same computation: the same loss and
// gradients, bit for bit, and the logits stay what the forward made.
TEST(Model, TheTrainingCrossEntropyKeepsTheInferenceBits) {
  BertConfig cfg = small_config(Head::kMaskedLM);
  cfg.hidden_dropout_prob = 0.0f;
  cfg.attention_probs_dropout_prob = 0.0f;
  const Batch batch = random_batch(cfg, {16, 9, 12, 5}, 7);
  BertModel model(cfg, limits_for(batch, 16));
  ASSERT_TRUE(model.backend().splits_cross_entropy()) << "the CPU's split ops are what this tests";
  model.init_weights(4);
  std::vector<float> grads[2], logits[2];
  double losses[2];
  for (int training : {0, 1}) {
    model.zero_grad();
    const ForwardResult f = model.forward(batch, training == 1, 3);
    losses[training] = f.loss_sum;
    logits[training] = model.logits_to_host();
    model.backward(static_cast<float>(1.0 / f.count));
    grads[training].resize(static_cast<size_t>(model.num_params()));
    model.backend().download(grads[training].data(), model.grads(), sizeof(float) * grads[training].size());
    if (training == 1) {
      EXPECT_EQ(model.logits_to_host(), logits[1]) << "backward kept the logits";
    }
  }
  EXPECT_EQ(losses[1], losses[0]);
  EXPECT_EQ(logits[1], logits[0]);
  EXPECT_TRUE(bit_identical(grads[1].data(), grads[0].data(), model.num_params()));
}

TEST(Optim, LinearScheduleMatchesHuggingFace) {
  EXPECT_EQ(linear_schedule(0, 2, 10), 0.0);
  EXPECT_EQ(linear_schedule(1, 2, 10), 0.5);
  EXPECT_EQ(linear_schedule(2, 2, 10), 1.0);
  EXPECT_EQ(linear_schedule(6, 2, 10), 0.5);
  EXPECT_EQ(linear_schedule(10, 2, 10), 0.0);
  EXPECT_EQ(linear_schedule(0, 0, 4), 1.0);
}

TEST(Optim, NoDecayParametersAreExcluded) {
  const BertConfig cfg = small_config(Head::kClassification);
  BertModel model(cfg, {8, 1, 8, 1});
  model.init_weights(1);
  model.zero_grad();  // zero gradients: only weight decay moves a parameter
  AdamW adam(model.table(), AdamWOptions{.lr = 0.1, .weight_decay = 0.5, .no_decay = {"bias", "LayerNorm.weight"}});
  const float before_w = model.param("classifier.weight")[0];
  const float before_ln = model.param("bert.embeddings.LayerNorm.weight")[0];
  adam.step(model.params(), model.grads(), 0.1);
  EXPECT_FLOAT_EQ(model.param("classifier.weight")[0], before_w * (1.0f - 0.1f * 0.5f));
  EXPECT_EQ(model.param("bert.embeddings.LayerNorm.weight")[0], before_ln);
}

TEST(Optim, ClipGradNormScalesToMaxNorm) {
  std::vector<float> g{3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(*default_backend(), g.data(), 2, 1.0), 5.0);
  EXPECT_NEAR(std::sqrt(g[0] * g[0] + g[1] * g[1]), 1.0, 1e-6);
  std::vector<float> small{0.3f, 0.4f};
  clip_grad_norm(*default_backend(), small.data(), 2, 1.0);
  EXPECT_EQ(small[0], 0.3f);
}

// The trainer's clipping inside AdamW (clip_coefficient, then step with it) gives the bits of
// clip_grad_norm and then step, clipped or not, and leaves the gradients as they were.
TEST(Optim, ClippingInsideAdamWIsClippingFirstBitForBit) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  const Batch batch = random_batch(cfg, {16, 9, 12, 5}, 7);
  for (double max_norm : {1e-3, 1e6, 0.0}) {
    BertModel a(cfg, limits_for(batch, 16)), b(cfg, limits_for(batch, 16));
    a.init_weights(42);
    b.init_weights(42);
    AdamW adam_a(a.table(), AdamWOptions{.lr = 1e-3}), adam_b(b.table(), AdamWOptions{.lr = 1e-3});
    const auto grads_of_b = [&b] {
      std::vector<float> g(static_cast<size_t>(b.num_params()));
      b.backend().download(g.data(), b.grads(), sizeof(float) * g.size());
      return g;
    };
    for (int s = 0; s < 3; ++s) {
      for (BertModel* m : {&a, &b}) {
        m->zero_grad();
        const ForwardResult f = m->forward(batch, true, 1000 + s);
        m->backward(static_cast<float>(1.0 / f.count));
      }
      const std::vector<float> grads = grads_of_b();
      const double norm = clip_grad_norm(a.backend(), a.grads(), a.num_params(), max_norm);
      adam_a.step(a.params(), a.grads(), 1e-3);
      const GradClip clip = clip_coefficient(b.backend(), b.grads(), b.num_params(), max_norm);
      EXPECT_EQ(clip.norm, norm);
      EXPECT_EQ(clip.coefficient != 1.0f, max_norm == 1e-3) << max_norm;
      adam_b.step(b.params(), b.grads(), 1e-3, clip.coefficient);
      EXPECT_EQ(grads_of_b(), grads) << "the gradients were changed";
    }
    const auto pa = a.params_to_host(), pb = b.params_to_host();
    EXPECT_TRUE(bit_identical(pa.data(), pb.data(), static_cast<int64_t>(pa.size()))) << max_norm;
  }
}

}  // namespace
}  // namespace tlm::testing
