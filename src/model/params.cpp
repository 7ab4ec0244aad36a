#include "tlm/params.h"

#include <cmath>

#include "model/conv_front.h"
#include "tlm/check.h"

namespace tlm {

ParamTable::ParamTable(const BertConfig& cfg) {
  using I = ParamInfo::Init;
  const int64_t c = cfg.hidden_size, f = cfg.intermediate_size;
  add("bert.embeddings.word_embeddings.weight", {cfg.vocab_size, c}, I::kNormal);
  add("bert.embeddings.position_embeddings.weight", {cfg.max_position_embeddings, c}, I::kNormal);
  add("bert.embeddings.token_type_embeddings.weight", {cfg.type_vocab_size, c}, I::kNormal);
  add("bert.embeddings.LayerNorm.weight", {c}, I::kOne);
  add("bert.embeddings.LayerNorm.bias", {c}, I::kZero);
  if (cfg.conv.enabled()) {
    const ConvFrontShape front(cfg.conv);
    for (int s = 0; s < front.stages(); ++s) {
      const ConvStageNames n = conv_stage_names(cfg.conv, s);
      const int64_t in = front.in_channels(s), out = front.out_channels(s), kh = front.kernel_seq(s),
                    kw = front.kernel_hidden(s);
      // torch's Conv2d default (HF's _init_weights runs before their code swaps the block in)
      const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in * kh * kw)));
      add(kConvPrefix + n.conv_weight, {out, in, kh, kw}, I::kUniform, bound);
      add(kConvPrefix + n.conv_bias, {out}, I::kUniform, bound);
      add(kConvPrefix + n.bn_weight, {out}, I::kOne);
      add(kConvPrefix + n.bn_bias, {out}, I::kZero);
      add_buffer(kConvPrefix + n.running_mean, out, I::kZero);
      add_buffer(kConvPrefix + n.running_var, out, I::kOne);
      counters_.push_back(kConvPrefix + n.num_batches_tracked);
    }
  }
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = encoder_layer_prefix(cfg, l);
    // query, key and value weights are adjacent, so together they form one (3c, c) matrix and
    // the projection is a single GEMM; the biases likewise form one (3c) vector.
    add(p + "attention.self.query.weight", {c, c}, I::kNormal);
    add(p + "attention.self.key.weight", {c, c}, I::kNormal);
    add(p + "attention.self.value.weight", {c, c}, I::kNormal);
    add(p + "attention.self.query.bias", {c}, I::kZero);
    add(p + "attention.self.key.bias", {c}, I::kZero);
    add(p + "attention.self.value.bias", {c}, I::kZero);
    add(p + "attention.output.dense.weight", {c, c}, I::kNormal);
    add(p + "attention.output.dense.bias", {c}, I::kZero);
    add(p + "attention.output.LayerNorm.weight", {c}, I::kOne);
    add(p + "attention.output.LayerNorm.bias", {c}, I::kZero);
    add(p + "intermediate.dense.weight", {f, c}, I::kNormal);
    add(p + "intermediate.dense.bias", {f}, I::kZero);
    add(p + "output.dense.weight", {c, f}, I::kNormal);
    add(p + "output.dense.bias", {c}, I::kZero);
    add(p + "output.LayerNorm.weight", {c}, I::kOne);
    add(p + "output.LayerNorm.bias", {c}, I::kZero);
  }
  if (cfg.head == Head::kMaskedLM) {
    add("cls.predictions.transform.dense.weight", {c, c}, I::kNormal);
    add("cls.predictions.transform.dense.bias", {c}, I::kZero);
    add("cls.predictions.transform.LayerNorm.weight", {c}, I::kOne);
    add("cls.predictions.transform.LayerNorm.bias", {c}, I::kZero);
    // The decoder weight is tied to the word embeddings (not a tensor of its own, as in HF's
    // saved files); its bias is cls.predictions.bias.
    add("cls.predictions.bias", {cfg.vocab_size}, I::kZero);
  } else {
    add("bert.pooler.dense.weight", {c, c}, I::kNormal);
    add("bert.pooler.dense.bias", {c}, I::kZero);
    add("classifier.weight", {cfg.num_labels(), c}, I::kNormal);
    add("classifier.bias", {cfg.num_labels()}, I::kZero);
  }
}

std::string encoder_layer_prefix(const BertConfig& config, int l) {
  return fmt::format("bert.encoder.layer.{}.", l + (config.conv.enabled() ? 1 : 0));
}

namespace {

// Appends a tensor to `list` at offset `total` and moves `total` past it (no padding:
// query/key/value must stay adjacent).
void append(std::vector<ParamInfo>& list, int64_t& total, const std::string& name, std::vector<int64_t> shape,
            ParamInfo::Init init, float bound) {
  ParamInfo p;
  p.name = name;
  p.size = 1;
  for (int64_t d : shape) p.size *= d;
  p.shape = std::move(shape);
  p.offset = total;
  p.init = init;
  p.bound = bound;
  total += p.size;
  list.push_back(std::move(p));
}

const ParamInfo* find_in(const std::vector<ParamInfo>& list, const std::string& name) {
  for (const auto& e : list) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace

void ParamTable::add_buffer(const std::string& name, int64_t size, ParamInfo::Init init) {
  append(buffers_, buffers_total_, name, {size}, init, 0);
}

void ParamTable::add(const std::string& name, std::vector<int64_t> shape, ParamInfo::Init init, float bound) {
  append(entries_, total_, name, std::move(shape), init, bound);
}

const ParamInfo* ParamTable::find(const std::string& name) const { return find_in(entries_, name); }

const ParamInfo& ParamTable::buffer(const std::string& name) const {
  const ParamInfo* p = find_in(buffers_, name);
  if (!p) TLM_FAIL("no buffer named {}", name);
  return *p;
}

const ParamInfo& ParamTable::at(const std::string& name) const {
  const ParamInfo* p = find(name);
  if (!p) TLM_FAIL("no parameter named {}", name);
  return *p;
}

}  // namespace tlm
