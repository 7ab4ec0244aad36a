#include "eval/bert_onnx.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "eval/onnx_graph.h"
#include "model/conv_front.h"
#include "tlm/check.h"
#include "tlm/params.h"

namespace tlm {

namespace {

// The graph's shared inputs, computed once for every member.
struct Inputs {
  std::string ids;        // (batch, sequence) int64, [SEP] restored in rows cut at max_len
  std::string type_ids;   // (batch, sequence) int64
  std::string positions;  // (sequence) int64: 0 .. sequence-1
  std::string mask_bias;  // (batch, 1, 1, sequence) float: 0 where attended, float's lowest where padded
  // for a convolutional front-end only (empty otherwise):
  std::string mask_rows;  // (batch, 1, sequence, 1) float: 1 where attended, 0 where padded
  std::string attended;   // (batch, sequence) bool
  std::string length;     // (1) int64: the sequence axis's size
};

Inputs declare_inputs(OnnxGraph& g, const OnnxGraphSpec& spec, bool conv) {
  using onnx::TensorProto;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"}) {
    g.input(name, TensorProto::INT64, {std::string("batch"), std::string("sequence")});
  }
  Inputs in;
  in.type_ids = "token_type_ids";
  const std::string shape = g.op("Shape", {"input_ids"});
  in.positions = g.op("Range", {g.int_scalar(0), g.op("Gather", {shape, g.int_scalar(1)}), g.int_scalar(1)});
  in.ids = "input_ids";
  if (spec.max_len > 0) {
    // transformers.js truncates after adding [CLS] and [SEP], so a row cut at max_len has lost its
    // [SEP]: in a row whose last attended position is max_len - 1, that position becomes [SEP]. A
    // row that ends in [SEP] (every correctly tokenized one) is unchanged; shorter rows are untouched.
    const std::string row_positions = g.op("Unsqueeze", {in.positions, g.ints({0})});  // (1, sequence)
    const std::string last = g.op("ReduceMax", {g.op("Mul", {"attention_mask", row_positions})},
                                  {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{1}}});  // (batch, 1)
    const std::string edge = g.int_scalar(spec.max_len - 1);
    const std::string cut = g.op("And", {g.op("Equal", {row_positions, edge}), g.op("Equal", {last, edge})});
    in.ids = g.op("Where", {cut, g.int_scalar(spec.sep_id), "input_ids"});
  }
  // Hugging Face's extended mask: (1 - mask) * finfo(float32).min, added to the scores.
  const std::string mask = g.op("Cast", {"attention_mask"}, {{"to", int64_t{TensorProto::FLOAT}}});
  const std::string bias =
      g.op("Mul", {g.op("Sub", {g.float_scalar(1.0f), mask}), g.float_scalar(std::numeric_limits<float>::lowest())});
  in.mask_bias = g.op("Unsqueeze", {bias, g.ints({1, 2})});
  if (conv) {
    in.mask_rows = g.op("Unsqueeze", {mask, g.ints({1, 3})});
    in.attended = g.op("Cast", {"attention_mask"}, {{"to", int64_t{TensorProto::BOOL}}});
    in.length = g.op("Gather", {shape, g.ints({1})});
  }
  return in;
}

// One member's encoder and head, value names prefixed so members never collide.
class BertGraph {
 public:
  BertGraph(OnnxGraph& g, const OnnxMember& m, std::string prefix)
      : g_(g), m_(m), table_(m.config), prefix_(std::move(prefix)) {}

  // (batch, labels) for a classifier, (batch, sequence, vocab) for a masked-LM.
  std::string logits(const Inputs& in) {
    const BertConfig& c = m_.config;
    std::string x;
    if (!c.conv.enabled()) {
      x = embed(in.ids, in.type_ids, in.positions);
    } else if (c.conv.pad_to == 0) {
      // packed: each sequence its own image, zero beyond its length at every stage
      x = conv_front(embed(in.ids, in.type_ids, in.positions), in.mask_rows);
    } else {
      // the paper's padded batches: every row [PAD]-padded to pad_to (padding: the [PAD] id, type 0,
      // its position) through the front-end, then the real length on to the transformer layers
      const int64_t pad = c.pad_token_id, pad_to = c.conv.pad_to;
      const std::string pads =
          g_.op("Concat", {g_.ints({0, 0, 0}), g_.op("Sub", {g_.ints({pad_to}), in.length})}, {{"axis", int64_t{0}}});
      auto padded = [&](const std::string& values, int64_t fill) {
        const std::string kept = g_.op("Where", {in.attended, values, g_.int_scalar(fill)});
        return g_.op("Pad", {kept, pads, g_.int_scalar(fill)});
      };
      std::vector<int64_t> positions(static_cast<size_t>(pad_to));
      for (int64_t t = 0; t < pad_to; ++t) positions[static_cast<size_t>(t)] = t;
      const std::string front = conv_front(embed(padded(in.ids, pad), padded(in.type_ids, 0), g_.ints(positions)), "");
      x = g_.op("Slice", {front, g_.ints({0}), in.length, g_.ints({1})});
    }
    for (int l = 0; l < c.num_hidden_layers; ++l) x = layer(x, encoder_layer_prefix(c, l), in.mask_bias);
    if (c.head == Head::kClassification) {
      const std::string first = g_.op("Gather", {x, g_.int_scalar(0)}, {{"axis", int64_t{1}}});  // (batch, hidden)
      const std::string pooled = g_.op("Tanh", {linear(first, "bert.pooler.dense")});
      return linear(pooled, "classifier");
    }
    const std::string t =
        layer_norm(gelu(linear(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm");
    // the decoder is tied to the word embeddings: (hidden, vocab) by a Transpose of the one copy
    const std::string decoder =
        g_.op("Transpose", {weight("bert.embeddings.word_embeddings.weight")}, {{"perm", std::vector<int64_t>{1, 0}}});
    return g_.op("Add", {g_.op("MatMul", {t, decoder}), weight("cls.predictions.bias")});
  }

 private:
  const float* data(const std::string& name) const { return m_.params.data() + table_.at(name).offset; }

  // (batch, rows, hidden): LayerNorm((word + type) + position), as Hugging Face sums them.
  std::string embed(const std::string& ids, const std::string& types, const std::string& positions) {
    const std::string word = g_.op("Gather", {weight("bert.embeddings.word_embeddings.weight"), ids});
    const std::string type = g_.op("Gather", {weight("bert.embeddings.token_type_embeddings.weight"), types});
    const std::string pos = g_.op("Gather", {weight("bert.embeddings.position_embeddings.weight"), positions});
    return layer_norm(g_.op("Add", {g_.op("Add", {word, type}), pos}), "bert.embeddings.LayerNorm");
  }

  // The convolutional front-end on x (batch, rows, hidden) seen as (batch, 1, rows, hidden): per
  // stage Conv2d (padding "same", torch's split: the odd pixel after) -> BatchNorm2d on the running
  // statistics -> GELU. With mask_rows (batch, 1, rows, 1), rows beyond each length are zeroed before
  // every convolution (the packed semantics); with "", every row takes part (the padded one).
  std::string conv_front(const std::string& x, const std::string& mask_rows) {
    const ConvFrontShape front(m_.config.conv);
    std::string h = g_.op("Unsqueeze", {x, g_.ints({1})});
    for (int s = 0; s < front.stages(); ++s) {
      const ConvStageNames n = conv_stage_names(front.config, s);
      const int64_t ks = front.kernel_seq(s), kh = front.kernel_hidden(s);
      if (!mask_rows.empty()) h = g_.op("Mul", {h, mask_rows});
      h = g_.op(
          "Conv", {h, weight(kConvPrefix + n.conv_weight), weight(kConvPrefix + n.conv_bias)},
          {{"kernel_shape", std::vector<int64_t>{ks, kh}},
           {"pads", std::vector<int64_t>{(ks - 1) / 2, (kh - 1) / 2, ks - 1 - (ks - 1) / 2, kh - 1 - (kh - 1) / 2}}});
      h = g_.op("BatchNormalization",
                {h, weight(kConvPrefix + n.bn_weight), weight(kConvPrefix + n.bn_bias),
                 buffer(kConvPrefix + n.running_mean), buffer(kConvPrefix + n.running_var)},
                {{"epsilon", ConvFrontShape::kBnEps}});
      h = gelu(h);
    }
    return g_.op("Squeeze", {h, g_.ints({1})});
  }

  std::string buffer(const std::string& name) {
    const ParamInfo& b = table_.buffer(name);
    return g_.weight(prefix_ + name, b.shape, m_.buffers.data() + b.offset);
  }

  // Each tensor becomes an initializer once, however often it is read.
  std::string weight(const std::string& name) {
    const std::string full = prefix_ + name;
    if (std::find(added_.begin(), added_.end(), full) == added_.end()) {
      g_.weight(full, table_.at(name).shape, data(name));
      added_.push_back(full);
    }
    return full;
  }

  // torch Linear: x @ W^T + b, W (out, in) stored transposed as (in, out).
  std::string linear(const std::string& x, const std::string& module) {
    const ParamInfo& w = table_.at(module + ".weight");
    const std::string wt = g_.weight_transposed(prefix_ + module + ".weight", w.shape[0], w.shape[1], data(w.name));
    return g_.op("Add", {g_.op("MatMul", {x, wt}), weight(module + ".bias")});
  }

  std::string layer_norm(const std::string& x, const std::string& module) {
    return g_.op("LayerNormalization", {x, weight(module + ".weight"), weight(module + ".bias")},
                 {{"axis", int64_t{-1}}, {"epsilon", m_.config.layer_norm_eps}});
  }

  // erf GELU as transformers writes it: x * 0.5 * (1 + erf(x / sqrt(2)))
  std::string gelu(const std::string& x) {
    const std::string erf = g_.op("Erf", {g_.op("Div", {x, g_.float_scalar(std::sqrt(2.0f))})});
    return g_.op("Mul", {g_.op("Mul", {x, g_.float_scalar(0.5f)}), g_.op("Add", {g_.float_scalar(1.0f), erf})});
  }

  // One post-LayerNorm encoder layer on x (batch, sequence, hidden).
  std::string layer(const std::string& x, const std::string& p, const std::string& mask_bias) {
    const BertConfig& c = m_.config;
    const std::string heads = g_.ints({0, 0, c.num_attention_heads, c.head_dim()});
    auto split = [&](const std::string& module, std::vector<int64_t> perm) {
      return g_.op("Transpose", {g_.op("Reshape", {linear(x, p + module), heads})}, {{"perm", std::move(perm)}});
    };
    const std::string q = split("attention.self.query", {0, 2, 1, 3});  // (batch, heads, sequence, d)
    const std::string k = split("attention.self.key", {0, 2, 3, 1});    // (batch, heads, d, sequence)
    const std::string v = split("attention.self.value", {0, 2, 1, 3});
    const std::string scores =
        g_.op("Div", {g_.op("MatMul", {q, k}), g_.float_scalar(std::sqrt(static_cast<float>(c.head_dim())))});
    const std::string probs = g_.op("Softmax", {g_.op("Add", {scores, mask_bias})}, {{"axis", int64_t{-1}}});
    const std::string context = g_.op(
        "Reshape", {g_.op("Transpose", {g_.op("MatMul", {probs, v})}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}),
                    g_.ints({0, 0, c.hidden_size})});
    const std::string attended =
        layer_norm(g_.op("Add", {linear(context, p + "attention.output.dense"), x}), p + "attention.output.LayerNorm");
    const std::string inner = gelu(linear(attended, p + "intermediate.dense"));
    return layer_norm(g_.op("Add", {linear(inner, p + "output.dense"), attended}), p + "output.LayerNorm");
  }

  OnnxGraph& g_;
  const OnnxMember& m_;
  ParamTable table_;
  std::string prefix_;
  std::vector<std::string> added_;
};

}  // namespace

onnx::ModelProto build_bert_onnx(const std::vector<OnnxMember>& members, const OnnxGraphSpec& spec) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("tlm");
  model.set_producer_version(TLM_VERSION);
  model.add_opset_import()->set_version(kOnnxOpset);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(spec.masked_lm ? "tlm_bert_masked_lm" : "tlm_bert_classifier");
  OnnxGraph g(graph);
  const bool conv =
      std::any_of(members.begin(), members.end(), [](const OnnxMember& m) { return m.config.conv.enabled(); });
  const Inputs in = declare_inputs(g, spec, conv);
  std::vector<std::string> member_logits;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string prefix = members.size() > 1 ? fmt::format("member{}/", i) : "";
    member_logits.push_back(BertGraph(g, members[i], prefix).logits(in));
  }
  std::string logits = member_logits[0];
  if (member_logits.size() > 1) {
    // log of the mean of the members' softmax: a consumer's softmax returns the mean exactly
    std::vector<std::string> probs;
    for (const auto& l : member_logits) probs.push_back(g.op("Softmax", {l}, {{"axis", int64_t{-1}}}));
    const std::string mean =
        g.op("Div", {g.op("Sum", probs), g.float_scalar(static_cast<float>(member_logits.size()))});
    logits = g.op("Log", {mean});
  }
  g.rename_output(logits, "logits");
  using Dim = OnnxGraph::Dim;
  if (spec.masked_lm) {
    g.output("logits", onnx::TensorProto::FLOAT,
             {Dim{std::string("batch")}, Dim{std::string("sequence")}, Dim{spec.vocab_size}});
  } else {
    g.output("logits", onnx::TensorProto::FLOAT, {Dim{std::string("batch")}, Dim{spec.num_labels}});
  }
  auto* meta = model.add_metadata_props();
  meta->set_key("tlm_members");
  meta->set_value(std::to_string(members.size()));
  return model;
}

// ONNX's own checker and strict shape inference: a graph that fails them is a bug here, never shipped.
void check_onnx_model(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto copy = model;
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {
    TLM_FAIL("the exported ONNX graph is invalid: {}", e.what());
  }
}

}  // namespace tlm
