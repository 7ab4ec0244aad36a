// The model configuration: the fields of Hugging Face's BertConfig, read from and written as
// a Hugging Face config.json, plus the head the checkpoint carries.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tlm {

enum class Head { kMaskedLM, kClassification };

// The paper's convolutional front-end (their ConvolutionLayers, block 0 of a convolutional
// BERT-1, before the transformer layers): `layers` stages of Conv2d(kernel_seq x kernel_hidden,
// `channels` out) -> BatchNorm2d -> GELU over the embeddings seen as a one-channel image, then a
// pointwise projection to one channel. layers 0: none (a plain BERT).
struct ConvConfig {
  int layers = 0;
  int kernel_seq = 3, kernel_hidden = 3;
  int channels = 64;
  // 0: packed (each sequence an image of its own length, zero beyond its edges; BatchNorm over real
  // tokens). > 0: the paper's padded batches: every sequence is padded with [PAD] to this length
  // for the front-end, so the convolution and BatchNorm see the [PAD] rows as in their code
  // (padding="max_length"); the transformer layers then take the real rows.
  int pad_to = 0;
  bool enabled() const { return layers > 0; }
};

// A convolution kernel as text: "k" (k x k) or "seq,hidden" (e.g. "16,3"); sizes 1..4096.
// parse_conv_kernel throws tlm::Error saying what is wrong; conv_kernel_text is its canonical form.
std::pair<int, int> parse_conv_kernel(const std::string& text);
std::string conv_kernel_text(int kernel_seq, int kernel_hidden);

struct BertConfig {
  int vocab_size = 30522;
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  std::string hidden_act = "gelu";  // erf GELU; the only activation we implement
  int max_position_embeddings = 512;
  int type_vocab_size = 2;
  float layer_norm_eps = 1e-12f;
  float initializer_range = 0.02f;
  float hidden_dropout_prob = 0.1f;
  float attention_probs_dropout_prob = 0.1f;
  float classifier_dropout = -1.0f;  // < 0: null in config.json, HF then uses hidden_dropout_prob
  int pad_token_id = 0;
  // Special ids the data layer relies on ([UNK] [CLS] [SEP] [MASK]); bert-base-uncased layout.
  int unk_token_id = 100, cls_token_id = 101, sep_token_id = 102, mask_token_id = 103;

  ConvConfig conv;  // config.json: "tlm": {"conv": {"layers", "kernel": [seq, hidden], "channels"}}

  Head head = Head::kMaskedLM;
  std::vector<std::string> labels;  // classification: id2label, in id order

  int head_dim() const { return hidden_size / num_attention_heads; }
  int num_labels() const { return static_cast<int>(labels.size()); }
  float classifier_dropout_prob() const { return classifier_dropout >= 0 ? classifier_dropout : hidden_dropout_prob; }

  // Throws tlm::Error naming the first impossible field.
  void validate() const;

  nlohmann::json to_hf_json() const;
  static BertConfig from_hf_json(const nlohmann::json& j, const std::string& source);
  static BertConfig load(const std::string& path);
  void save(const std::string& path) const;  // atomic

  // Named configurations from the paper and for development: bert6, bert1, bert1-wide, mini, tiny,
  // and the paper's convolutional BERT-1s (bert1-conv2-k3-d64, bert1-conv2-k16x3-d64, bert1-conv3-k3-d32).
  static BertConfig named(const std::string& name);
  static std::vector<std::string> names();
};

}  // namespace tlm
