#include "tlm/config.h"

#include <fmt/ranges.h>

#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "tlm/check.h"
#include "tlm/file_io.h"

namespace tlm {

using nlohmann::json;

std::pair<int, int> parse_conv_kernel(const std::string& text) {
  auto size = [&](const std::string& part) {
    int v = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < 1 || v > 4096) {
      throw Error(
          fmt::format("convolution kernel \"{}\": expected k or seq,hidden with sizes 1..4096 (e.g. 3 or 16,3)", text));
    }
    return v;
  };
  const size_t comma = text.find(',');
  if (comma == std::string::npos) {
    const int k = size(text);
    return {k, k};
  }
  return {size(text.substr(0, comma)), size(text.substr(comma + 1))};
}

std::string conv_kernel_text(int kernel_seq, int kernel_hidden) {
  return kernel_seq == kernel_hidden ? std::to_string(kernel_seq) : fmt::format("{},{}", kernel_seq, kernel_hidden);
}

void BertConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("invalid model config: " + what);
  };
  need(num_hidden_layers >= 1 && num_hidden_layers <= 64,
       fmt::format("num_hidden_layers = {} (must be 1..64)", num_hidden_layers));
  need(hidden_size >= 1, fmt::format("hidden_size = {} (must be positive)", hidden_size));
  need(num_attention_heads >= 1, fmt::format("num_attention_heads = {} (must be positive)", num_attention_heads));
  need(hidden_size % num_attention_heads == 0,
       fmt::format("hidden_size = {} is not divisible by num_attention_heads = {}", hidden_size, num_attention_heads));
  need(intermediate_size >= 1, fmt::format("intermediate_size = {} (must be positive)", intermediate_size));
  need(hidden_act == "gelu",
       fmt::format("hidden_act = \"{}\" (only \"gelu\", the erf form, is supported)", hidden_act));
  need(max_position_embeddings >= 2,
       fmt::format("max_position_embeddings = {} (must be >= 2)", max_position_embeddings));
  need(type_vocab_size >= 1, fmt::format("type_vocab_size = {} (must be >= 1)", type_vocab_size));
  need(layer_norm_eps > 0, fmt::format("layer_norm_eps = {} (must be positive)", layer_norm_eps));
  need(initializer_range > 0, fmt::format("initializer_range = {} (must be positive)", initializer_range));
  for (auto [name, p] : {std::pair{"hidden_dropout_prob", hidden_dropout_prob},
                         std::pair{"attention_probs_dropout_prob", attention_probs_dropout_prob}}) {
    need(p >= 0 && p < 1, fmt::format("{} = {} (must be in [0, 1))", name, p));
  }
  need(classifier_dropout < 1, fmt::format("classifier_dropout = {} (must be < 1)", classifier_dropout));
  const int largest_special = std::max({pad_token_id, unk_token_id, cls_token_id, sep_token_id, mask_token_id});
  need(std::min({pad_token_id, unk_token_id, cls_token_id, sep_token_id, mask_token_id}) >= 0,
       "special token ids must be >= 0");
  need(vocab_size > largest_special,
       fmt::format("vocab_size = {} is smaller than the special token ids need (largest id {})", vocab_size,
                   largest_special));
  need(conv.layers >= 0 && conv.layers <= 8, fmt::format("conv layers = {} (must be 0..8)", conv.layers));
  if (conv.enabled()) {
    need(conv.kernel_seq >= 1 && conv.kernel_seq <= max_position_embeddings,
         fmt::format("conv kernel along the sequence = {} (must be 1..max_position_embeddings = {})", conv.kernel_seq,
                     max_position_embeddings));
    need(conv.kernel_hidden >= 1 && conv.kernel_hidden <= hidden_size,
         fmt::format("conv kernel along the hidden units = {} (must be 1..hidden_size = {})", conv.kernel_hidden,
                     hidden_size));
    need(conv.channels >= 1 && conv.channels <= 1024,
         fmt::format("conv channels = {} (must be 1..1024)", conv.channels));
    need(conv.pad_to >= 0 && conv.pad_to <= max_position_embeddings,
         fmt::format("conv pad_to = {} (must be 0..max_position_embeddings = {})", conv.pad_to,
                     max_position_embeddings));
  }
  if (head == Head::kClassification) {
    need(num_labels() >= 2, fmt::format("a classifier needs at least 2 labels, got {}", num_labels()));
  }
}

json BertConfig::to_hf_json() const {
  json j;
  j["architectures"] = {head == Head::kMaskedLM ? "BertForMaskedLM" : "BertForSequenceClassification"};
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["initializer_range"] = initializer_range;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["classifier_dropout"] = classifier_dropout >= 0 ? json(classifier_dropout) : json(nullptr);
  j["pad_token_id"] = pad_token_id;
  j["position_embedding_type"] = "absolute";
  j["torch_dtype"] = "float32";
  if (head == Head::kClassification) {
    json id2label = json::object(), label2id = json::object();
    for (size_t i = 0; i < labels.size(); ++i) {
      id2label[std::to_string(i)] = labels[i];
      label2id[labels[i]] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    j["problem_type"] = "single_label_classification";
  }
  j["tlm"] = {{"unk_token_id", unk_token_id},
              {"cls_token_id", cls_token_id},
              {"sep_token_id", sep_token_id},
              {"mask_token_id", mask_token_id}};
  if (conv.enabled()) {  // absent otherwise: a plain BERT's config.json is unchanged
    j["tlm"]["conv"] = {
        {"layers", conv.layers}, {"kernel", {conv.kernel_seq, conv.kernel_hidden}}, {"channels", conv.channels}};
    if (conv.pad_to > 0) j["tlm"]["conv"]["pad_to"] = conv.pad_to;
  }
  return j;
}

namespace {

template <typename T>
void read_field(const json& j, const char* key, T& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;  // keep the BertConfig default, as HF does
  // An integer field takes a whole number that fits, never a fraction cut down or a value wrapped.
  if constexpr (std::is_same_v<T, int>) {
    const bool whole = it->is_number_integer() &&
                       (it->is_number_unsigned()
                            ? it->template get<uint64_t>() <= uint64_t{INT32_MAX}
                            : it->template get<int64_t>() >= INT32_MIN && it->template get<int64_t>() <= INT32_MAX);
    if (!whole) throw Error(fmt::format("{}: field \"{}\" is not a 32-bit integer ({})", source, key, it->dump()));
  }
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: field \"{}\" has the wrong type ({})", source, key, it->dump()));
  }
}

}  // namespace

BertConfig BertConfig::from_hf_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": config is not a JSON object");
  BertConfig c;
  if (auto mt = j.find("model_type"); mt != j.end() && *mt != "bert") {
    throw Error(fmt::format("{}: model_type is {}, expected \"bert\"", source, mt->dump()));
  }
  read_field(j, "vocab_size", c.vocab_size, source);
  read_field(j, "hidden_size", c.hidden_size, source);
  read_field(j, "num_hidden_layers", c.num_hidden_layers, source);
  read_field(j, "num_attention_heads", c.num_attention_heads, source);
  read_field(j, "intermediate_size", c.intermediate_size, source);
  read_field(j, "hidden_act", c.hidden_act, source);
  read_field(j, "max_position_embeddings", c.max_position_embeddings, source);
  read_field(j, "type_vocab_size", c.type_vocab_size, source);
  read_field(j, "layer_norm_eps", c.layer_norm_eps, source);
  read_field(j, "initializer_range", c.initializer_range, source);
  read_field(j, "hidden_dropout_prob", c.hidden_dropout_prob, source);
  read_field(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
  read_field(j, "classifier_dropout", c.classifier_dropout, source);
  read_field(j, "pad_token_id", c.pad_token_id, source);
  if (auto pe = j.find("position_embedding_type"); pe != j.end() && *pe != "absolute") {
    throw Error(fmt::format("{}: position_embedding_type {} is not supported (only \"absolute\")", source, pe->dump()));
  }
  if (auto t = j.find("tlm"); t != j.end()) {
    read_field(*t, "unk_token_id", c.unk_token_id, source);
    read_field(*t, "cls_token_id", c.cls_token_id, source);
    read_field(*t, "sep_token_id", c.sep_token_id, source);
    read_field(*t, "mask_token_id", c.mask_token_id, source);
    if (auto cv = t->find("conv"); cv != t->end() && !cv->is_null()) {
      if (!cv->is_object()) throw Error(fmt::format("{}: field \"tlm.conv\" is not an object", source));
      read_field(*cv, "layers", c.conv.layers, source);
      read_field(*cv, "channels", c.conv.channels, source);
      read_field(*cv, "pad_to", c.conv.pad_to, source);
      std::vector<int> kernel{c.conv.kernel_seq, c.conv.kernel_hidden};
      read_field(*cv, "kernel", kernel, source);
      if (kernel.size() != 2) {
        throw Error(fmt::format("{}: field \"tlm.conv.kernel\" needs two sizes [sequence, hidden], got {}", source,
                                cv->at("kernel").dump()));
      }
      c.conv.kernel_seq = kernel[0];
      c.conv.kernel_hidden = kernel[1];
    }
  }
  c.head = Head::kMaskedLM;
  if (auto arch = j.find("architectures"); arch != j.end() && arch->is_array() && !arch->empty()) {
    const std::string a = (*arch)[0].is_string() ? (*arch)[0].get<std::string>() : "";
    if (a == "BertForSequenceClassification") {
      c.head = Head::kClassification;
    } else if (a != "BertForMaskedLM" && a != "BertForPreTraining" && a != "BertModel") {
      throw Error(fmt::format("{}: architecture \"{}\" is not supported", source, a));
    }
  }
  if (c.head == Head::kClassification) {
    auto it = j.find("id2label");
    if (it == j.end() || !it->is_object()) throw Error(source + ": a classifier config needs id2label");
    c.labels.assign(it->size(), "");
    for (auto& [key, value] : it->items()) {
      size_t id = 0;
      try {
        id = std::stoul(key);
      } catch (const std::exception&) {
        throw Error(fmt::format("{}: id2label key \"{}\" is not an integer", source, key));
      }
      if (id >= c.labels.size() || !value.is_string()) {
        throw Error(fmt::format("{}: id2label entry \"{}\" is out of range or not a string", source, key));
      }
      c.labels[id] = value.get<std::string>();
    }
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return c;
}

BertConfig BertConfig::load(const std::string& path) {
  const std::string text = read_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for overflowing numbers
    throw Error(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  return from_hf_json(j, path);
}

void BertConfig::save(const std::string& path) const { write_file_atomic(path, to_hf_json().dump(2) + "\n"); }

BertConfig BertConfig::named(const std::string& name) {
  BertConfig c;  // bert-base-uncased vocabulary, HF defaults
  c.max_position_embeddings = 512;
  auto shape = [&](int layers, int hidden, int heads) {
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.num_attention_heads = heads;
    c.intermediate_size = 4 * hidden;
  };
  if (name == "bert6") {
    shape(6, 768, 12);
  } else if (name == "bert1") {
    shape(1, 768, 12);
  } else if (name == "bert1-wide") {
    shape(1, 1536, 24);
  } else if (name == "mini") {
    shape(4, 256, 4);
  } else if (name == "tiny") {
    shape(2, 128, 2);
  } else if (name == "bert1-conv2-k3-d64" || name == "bert1-conv2-k16x3-d64" || name == "bert1-conv3-k3-d32") {
    shape(1, 768, 12);  // the paper's configs: conv2-k3-d64, conv2-k(16,3)-d64, conv3-k3-d32, 12 heads
    c.conv.layers = name[10] - '0';
    c.conv.kernel_seq = name == "bert1-conv2-k16x3-d64" ? 16 : 3;
    c.conv.channels = name == "bert1-conv3-k3-d32" ? 32 : 64;
  } else {
    throw Error(fmt::format("unknown model config \"{}\" (known: {})", name, fmt::join(names(), ", ")));
  }
  return c;
}

std::vector<std::string> BertConfig::names() {
  return {"bert6",
          "bert1",
          "bert1-wide",
          "mini",
          "tiny",
          "bert1-conv2-k3-d64",
          "bert1-conv2-k16x3-d64",
          "bert1-conv3-k3-d32"};
}

}  // namespace tlm
