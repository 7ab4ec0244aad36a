// The BERT encoder with its head (or a soft committee of several) as an ONNX graph, built through
// ONNX's own protobuf schema: inputs input_ids, attention_mask, token_type_ids (int64, (batch,
// sequence)), output logits. Numerically Hugging Face's BertForSequenceClassification /
// BertForMaskedLM (and the paper's convolutional front-end), as ref/bert_mirror.py.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tlm/config.h"

namespace tlm {

inline constexpr int kOnnxOpset = 17;  // LayerNormalization; ONNX 1.12 (Debian) checks up to 17

// A run's weights on the host, in its ParamTable's layouts.
struct OnnxMember {
  std::string dir;
  BertConfig config;
  std::vector<float> params;
  std::vector<float> buffers;  // a convolutional front-end's BatchNorm running statistics
};

// What the graph needs beyond the members' weights.
struct OnnxGraphSpec {
  bool masked_lm = false;
  int64_t sep_id = 0;
  int max_len = 0;  // the tokenizer's truncation length (0: none): rows cut there get their [SEP] back
  int64_t vocab_size = 0;
  int64_t num_labels = 0;
};

// One member: its logits; several (classifiers): log of the mean of their softmax.
onnx::ModelProto build_bert_onnx(const std::vector<OnnxMember>& members, const OnnxGraphSpec& spec);

// ONNX's own checker and strict shape inference; throws tlm::Error when the graph fails them.
void check_onnx_model(const onnx::ModelProto& model);

}  // namespace tlm
