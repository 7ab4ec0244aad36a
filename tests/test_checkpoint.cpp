// Checkpoints: round trips, exact resume, and every way a file can be wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "golden_fixture.h"
#include "temp_dir.h"
#include "test_helpers.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/model_io.h"
#include "tlm/optim.h"

namespace tlm::testing {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public TempDirTest {
 protected:
  void check_exact_resume(const BertConfig& cfg);
};

TEST_F(CheckpointTest, ModelRoundTripIsExact) {
  BertConfig padded = small_conv_config(Head::kClassification);
  padded.conv.pad_to = 16;
  for (const BertConfig& cfg : {small_config(Head::kMaskedLM), small_config(Head::kClassification),
                                small_conv_config(Head::kMaskedLM), padded}) {
    const Head head = cfg.head;
    BertModel a(cfg, {16, 2, 16, 4});
    a.init_weights(11);
    if (cfg.conv.enabled()) {  // move BatchNorm's running statistics away from their init
      const Batch batch = random_batch(cfg, {9, 7}, 3);
      a.forward(batch, true, 1);
      a.forward(batch, true, 2);
    }
    save_model(path("m"), a);
    const BertConfig back = load_config(path("m"));
    EXPECT_EQ(back.head, head);
    EXPECT_EQ(back.conv.layers, cfg.conv.layers);
    EXPECT_EQ(back.conv.kernel_seq, cfg.conv.kernel_seq);
    EXPECT_EQ(back.conv.kernel_hidden, cfg.conv.kernel_hidden);
    EXPECT_EQ(back.conv.channels, cfg.conv.channels);
    BertModel b(back, {16, 2, 16, 4});
    load_model_weights(b, path("m"), {LoadMode::kExact});
    EXPECT_TRUE(bit_identical(a.params(), b.params(), a.num_params()));
    const std::vector<float> stats_a = a.buffers_to_host(), stats_b = b.buffers_to_host();
    EXPECT_EQ(stats_a, stats_b);
    EXPECT_EQ(b.batches_tracked(), cfg.conv.enabled() ? 2 : 0);
    EXPECT_EQ(back.conv.pad_to, cfg.conv.pad_to);
    if (cfg.conv.enabled()) {
      // the forwards moved the statistics off their init (means 0, variances 1), so the check bites
      bool moved = false;
      for (const auto& e : a.table().buffers()) {
        const float init = e.name.ends_with("running_var") ? 1.0f : 0.0f;
        for (int64_t i = 0; i < e.size; ++i) moved = moved || stats_a[e.offset + i] != init;
      }
      EXPECT_TRUE(moved);
      // their names: block 0 of the encoder is the convolution, the transformer layer is block 1
      const auto file = read_safetensors(path("m/model.safetensors"));
      for (const char* name :
           {"bert.encoder.layer.0.layers.0.weight", "bert.encoder.layer.0.layers.1.running_var",
            "bert.encoder.layer.0.layers.4.num_batches_tracked", "bert.encoder.layer.0.conv.0.weight",
            "bert.encoder.layer.0.conv.1.running_mean", "bert.encoder.layer.1.attention.self.query.weight"}) {
        EXPECT_EQ(file.tensors.count(name), 1u) << name;
      }
    }
    // The tied decoder is not stored twice, as in HF's own files.
    const auto file = read_safetensors(path("m/model.safetensors"));
    EXPECT_EQ(file.tensors.count("cls.predictions.decoder.weight"), 0u);
    EXPECT_EQ(file.metadata.at("format"), "pt");
  }
}

TEST_F(CheckpointTest, EncoderOnlyLoadKeepsFreshHeads) {
  const BertConfig mlm = small_config(Head::kMaskedLM);
  BertModel pre(mlm, {16, 2, 16, 4});
  pre.init_weights(1);
  save_model(path("pre"), pre);
  BertConfig cls_cfg = mlm;
  cls_cfg.head = Head::kClassification;
  cls_cfg.labels = {"x", "y"};
  BertModel cls(cls_cfg, {16, 2, 16, 4});
  cls.init_weights(2);
  const std::vector<float> pooler(cls.param("bert.pooler.dense.weight"),
                                  cls.param("bert.pooler.dense.weight") + 24 * 24);
  load_model_weights(cls, path("pre"), {LoadMode::kEncoderOnly});
  const auto& e = cls.table().at("bert.encoder.layer.1.output.dense.weight");
  EXPECT_TRUE(bit_identical(cls.params() + e.offset, pre.param(e.name), e.size));
  EXPECT_TRUE(bit_identical(cls.param("bert.pooler.dense.weight"), pooler.data(), 24 * 24));
  // An exact load of an MLM file into a classifier names the missing head tensor.
  expect_error([&] { load_model_weights(cls, path("pre"), {LoadMode::kExact}); },
               {"missing tensor", "bert.pooler.dense.weight"});
}

TEST_F(CheckpointTest, MissingAndMisshapedTensorsAreNamed) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  BertModel m(cfg, {16, 2, 16, 4});
  m.init_weights(1);
  save_model(path("m"), m);
  SafeTensorsFile file = read_safetensors(path("m/model.safetensors"));

  SafeTensorsFile missing = file;
  missing.tensors.erase("bert.encoder.layer.1.intermediate.dense.bias");
  expect_error([&] { load_weights(m, missing, "f", {LoadMode::kExact}); },
               {"missing tensor", "bert.encoder.layer.1.intermediate.dense.bias"});

  SafeTensorsFile misshaped = file;
  misshaped.tensors["bert.encoder.layer.0.output.dense.weight"].shape = {40, 24};
  expect_error([&] { load_weights(m, misshaped, "f", {LoadMode::kExact}); },
               {"bert.encoder.layer.0.output.dense.weight", "shape [40, 24]", "expects [24, 40]"});

  SafeTensorsFile wrong_dtype = file;
  wrong_dtype.tensors["cls.predictions.bias"].dtype = "I32";
  expect_error([&] { load_weights(m, wrong_dtype, "f", {LoadMode::kExact}); }, {"cls.predictions.bias", "dtype I32"});

  SafeTensorsFile extra = file;
  extra.tensors["bert.encoder.layer.7.output.dense.weight"] = file.tensors.begin()->second;
  expect_error([&] { load_weights(m, extra, "f", {LoadMode::kExact}); },
               {"unexpected tensor", "bert.encoder.layer.7.output.dense.weight"});
}

TEST_F(CheckpointTest, BatchNormStatisticsAndCountersAreCheckedBeforeAnythingLoads) {
  const BertConfig cfg = small_conv_config(Head::kMaskedLM);
  BertModel m(cfg, {16, 2, 16, 4});
  m.init_weights(1);
  m.forward(random_batch(cfg, {9, 7}, 3), true, 1);  // statistics unlike a fresh model's
  save_model(path("m"), m);
  const SafeTensorsFile file = read_safetensors(path("m/model.safetensors"));
  BertModel target(cfg, {16, 2, 16, 4});
  target.init_weights(2);
  const std::vector<float> before = target.params_to_host(), stats_before = target.buffers_to_host();

  SafeTensorsFile missing = file;
  missing.tensors.erase("bert.encoder.layer.0.layers.4.running_var");
  expect_error([&] { load_weights(target, missing, "f", {LoadMode::kExact}); },
               {"missing tensor", "bert.encoder.layer.0.layers.4.running_var"});

  SafeTensorsFile no_counter = file;
  no_counter.tensors.erase("bert.encoder.layer.0.conv.1.num_batches_tracked");
  expect_error([&] { load_weights(target, no_counter, "f", {LoadMode::kExact}); },
               {"bert.encoder.layer.0.conv.1.num_batches_tracked"});

  SafeTensorsFile float_counter = file;
  float_counter.tensors["bert.encoder.layer.0.layers.1.num_batches_tracked"] =
      file.tensors.at("bert.encoder.layer.0.layers.1.running_mean");
  expect_error([&] { load_weights(target, float_counter, "f", {LoadMode::kExact}); },
               {"bert.encoder.layer.0.layers.1.num_batches_tracked", "must be one I64"});

  SafeTensorsFile nonfinite = file;
  SafeTensor& var = nonfinite.tensors["bert.encoder.layer.0.conv.1.running_var"];
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(var.bytes.data(), &inf, sizeof(inf));
  expect_error([&] { load_weights(target, nonfinite, "f", {LoadMode::kExact}); },
               {"bert.encoder.layer.0.conv.1.running_var", "non-finite"});

  SafeTensorsFile negative = file;
  SafeTensor& var2 = negative.tensors["bert.encoder.layer.0.layers.1.running_var"];
  const float minus_one = -1.0f;
  std::memcpy(var2.bytes.data() + sizeof(float), &minus_one, sizeof(minus_one));
  expect_error([&] { load_weights(target, negative, "f", {LoadMode::kExact}); },
               {"bert.encoder.layer.0.layers.1.running_var", "negative variance"});

  // Every refusal came before any copy: the model is as it was.
  EXPECT_EQ(target.params_to_host(), before);
  EXPECT_EQ(target.buffers_to_host(), stats_before);
}

TEST_F(CheckpointTest, TruncatedOrForeignFilesAreClearErrors) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  BertModel m(cfg, {16, 2, 16, 4});
  m.init_weights(1);
  save_model(path("m"), m);
  const std::string good = read_file(path("m/model.safetensors"));

  write_file_atomic(path("short"), good.substr(0, 5));
  expect_error([&] { read_safetensors(path("short")); }, {"short", "shorter than the 8-byte header length"});

  write_file_atomic(path("cut_header"), good.substr(0, 100));
  expect_error([&] { read_safetensors(path("cut_header")); }, {"cut_header", "runs past the end of the file"});

  write_file_atomic(path("cut_data"), good.substr(0, good.size() - 10));
  expect_error([&] { read_safetensors(path("cut_data")); }, {"cut_data", "outside the", "truncated"});

  write_file_atomic(path("foreign"), std::string("PK\x03\x04 this is a zip file, not tensors at all........"));
  expect_error([&] { read_safetensors(path("foreign")); }, {"foreign", "not a valid safetensors file"});

  std::string bad_json = good;
  bad_json[9] = '!';
  write_file_atomic(path("bad_json"), bad_json);
  expect_error([&] { read_safetensors(path("bad_json")); }, {"bad_json", "header is not JSON"});

  // Found by fuzz_safetensors: a number too large for a double is a clear error, not a crash.
  std::string overflow("\x2c\0\0\0\0\0\0\0", 8);
  overflow.append("222222.22262222E222222222222222").append(13, ' ');
  write_file_atomic(path("overflow"), overflow);
  expect_error([&] { read_safetensors(path("overflow")); }, {"overflow", "header is not JSON"});

  expect_error([&] { read_safetensors(path("does_not_exist")); }, {"does_not_exist", "cannot open"});
  expect_error([&] { load_config(path("nowhere")); }, {"config.json", "cannot open"});
}

TEST_F(CheckpointTest, ExactResumeGivesBitIdenticalWeights) {
  for (const BertConfig& cfg : {small_config(Head::kMaskedLM), small_conv_config(Head::kMaskedLM)}) {
    SCOPED_TRACE(cfg.conv.enabled() ? "convolutional" : "plain");
    check_exact_resume(cfg);
  }
}

void CheckpointTest::check_exact_resume(const BertConfig& cfg) {
  const Batch batch = random_batch(cfg, {16, 11, 7}, 5);
  const ModelLimits lim = limits_for(batch, 16);
  const int total = 8, split = 3;
  auto step = [&](BertModel& m, AdamW& opt, int s) {
    m.zero_grad();
    const ForwardResult f = m.forward(batch, true, 500 + s);
    m.backward(static_cast<float>(1.0 / f.count));
    clip_grad_norm(m.backend(), m.grads(), m.num_params(), 1.0);
    opt.step(m.params(), m.grads(), 1e-3 * linear_schedule(s, 2, total));
  };
  BertModel straight(cfg, lim);
  straight.init_weights(8);
  AdamW opt_straight(straight.table(), AdamWOptions{.lr = 1e-3});
  for (int s = 0; s < total; ++s) step(straight, opt_straight, s);

  {
    BertModel first(cfg, lim);
    first.init_weights(8);
    AdamW opt(first.table(), AdamWOptions{.lr = 1e-3});
    for (int s = 0; s < split; ++s) step(first, opt, s);
    save_model(path("ckpt"), first);
    save_optimizer(path("ckpt"), opt, first.table());
  }
  BertModel resumed(load_config(path("ckpt")), lim);
  load_model_weights(resumed, path("ckpt"), {LoadMode::kExact});
  AdamW opt(resumed.table(), AdamWOptions{.lr = 1e-3});
  load_optimizer(path("ckpt"), opt, resumed.table());
  EXPECT_EQ(opt.steps_taken(), split);
  for (int s = split; s < total; ++s) step(resumed, opt, s);
  EXPECT_TRUE(bit_identical(straight.params(), resumed.params(), straight.num_params()));
  EXPECT_EQ(straight.buffers_to_host(), resumed.buffers_to_host());  // BatchNorm's running statistics
  EXPECT_EQ(straight.batches_tracked(), resumed.batches_tracked());
}

TEST_F(CheckpointTest, OptimizerStateOfAnotherVersionIsRefused) {
  const BertConfig cfg = small_config(Head::kMaskedLM);
  BertModel m(cfg, {16, 2, 16, 4});
  AdamW opt(m.table(), AdamWOptions{});
  save_optimizer(path("o"), opt, m.table());
  SafeTensorsFile f = read_safetensors(path("o/optimizer.safetensors"));
  f.metadata["version"] = "99";
  write_safetensors(path("o/optimizer.safetensors"), f);
  expect_error([&] { load_optimizer(path("o"), opt, m.table()); }, {"version 99 is not supported"});
}

}  // namespace
}  // namespace tlm::testing

namespace tlm::testing {
namespace {

// A tlm checkpoint loads with a strict state-dict load into the PyTorch mirror of HF BERT and
// gives the same logits: the names, shapes, layout and config.json are Hugging Face's.
TEST_F(CheckpointTest, LoadsStrictlyInThePyTorchMirrorWithTheSameLogits) {
  for (const BertConfig& cfg : {small_config(Head::kMaskedLM), small_config(Head::kClassification),
                                small_conv_config(Head::kMaskedLM), small_conv_config(Head::kClassification)}) {
    const Head head = cfg.head;
    const std::vector<int> lengths{14, 9, 5};
    const Batch batch = random_batch(cfg, lengths, 21);
    BertModel model(cfg, limits_for(batch, 16));
    model.init_weights(77);
    if (cfg.conv.enabled()) model.forward(batch, true, 1);  // running statistics of a real batch
    save_model(path("ckpt"), model);
    model.forward(batch, false, 0);
    // The padded form of the batch, as HF takes it.
    const int rows = 3, cols = 14;
    std::vector<int32_t> ids(rows * cols, 0), mask(rows * cols, 0), types(rows * cols, 0), mrow, mcol;
    for (int r = 0; r < rows; ++r) {
      for (int t = 0; t < lengths[r]; ++t) {
        ids[r * cols + t] = batch.ids[batch.offsets[r] + t];
        mask[r * cols + t] = 1;
      }
    }
    for (int p : batch.mlm_positions) {
      int r = 0;
      while (p >= batch.offsets[r + 1]) ++r;
      mrow.push_back(r);
      mcol.push_back(p - batch.offsets[r]);
    }
    SafeTensorsFile inputs;
    inputs.add_i32("input.ids", {rows, cols}, ids.data());
    inputs.add_i32("input.mask", {rows, cols}, mask.data());
    inputs.add_i32("input.type_ids", {rows, cols}, types.data());
    if (head == Head::kMaskedLM) {
      const int64_t m = static_cast<int64_t>(mrow.size());
      inputs.add_i32("input.mlm_rows", {m}, mrow.data());
      inputs.add_i32("input.mlm_cols", {m}, mcol.data());
      inputs.add_f32("expected.logits", {m, cfg.vocab_size}, model.logits());
    } else {
      inputs.add_f32("expected.logits", {rows, cfg.num_labels()}, model.logits());
    }
    write_safetensors(path("inputs.safetensors"), inputs);
    const std::string cmd = fmt::format("/usr/bin/python3 {}/ref/check_checkpoint.py {} {}", source_dir(), path("ckpt"),
                                        path("inputs.safetensors"));
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

}  // namespace
}  // namespace tlm::testing
