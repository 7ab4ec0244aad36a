// `tlm export --format onnx`: a fine-tuned classifier, a soft committee of classifiers or a
// pre-trained masked-LM as one ONNX graph (opset 17, dynamic batch and sequence axes:
// input_ids, attention_mask, token_type_ids (int64, (batch, sequence)) -> logits), with what a
// Hugging Face consumer reads beside it: config.json (id2label/label2id), tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, vocab.txt; the graph at onnx/model.onnx, where
// transformers.js looks for it.
//
// A committee's logits are log(mean of the members' softmax), so a consumer's softmax gives the
// committee's probabilities. In a row attended up to the run's max length the graph writes [SEP] at
// the last position: a correctly tokenized row ends in [SEP] already, and a row whose [SEP] was cut
// off by a consumer that truncates after adding special tokens (transformers.js does) reads as
// tlm's own truncation, [CLS] + pieces + [SEP].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tlm {

struct OnnxExportOptions {
  std::vector<std::string> models;  // run folders: one classifier or masked-LM, or several classifiers
  std::string out;  // the folder written: absent, empty or an earlier export; never a run, nor holding or inside one
  bool allow_nonfinite = false;  // export weights holding NaN or infinity
};

struct OnnxExportSummary {
  std::string architecture;  // BertForSequenceClassification or BertForMaskedLM
  int members = 0;
  int64_t parameters = 0;             // summed over members
  int64_t model_bytes = 0;            // onnx/model.onnx
  std::vector<std::string> warnings;  // e.g. the earlier export could not be removed after the swap
};

// Validates every input first (a refused export leaves `out` as it was), then writes the folder
// whole (replace_folder: built beside it, swapped into place). Throws tlm::Error saying what is wrong.
OnnxExportSummary export_onnx(const OnnxExportOptions& options);

}  // namespace tlm
