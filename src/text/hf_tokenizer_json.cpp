#include "tlm/hf_tokenizer_json.h"

#include "tlm/check.h"

namespace tlm {

using nlohmann::json;

namespace {

json strip_accents_value(const TokenizerOptions& o) {
  return o.strip_accents < 0 ? json(nullptr) : json(o.strip_accents == 1);
}

json added_token(int32_t id, const std::string& content) {
  // normalized false: matched in the raw text before normalisation, as tlm's literal tokens are
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

json special(const std::string& token, int type_id) {
  return {{"SpecialToken", {{"id", token}, {"type_id", type_id}}}};
}

json sequence(const char* id, int type_id) { return {{"Sequence", {{"id", id}, {"type_id", type_id}}}}; }

// BertNormalizer, after (uncased) a Replace of capital sigma by small sigma: the Rust library
// lowercases character by character (Σ -> σ, as tlm), while transformers.js's toLowerCase turns a
// word-final Σ into ς. The Replace changes nothing in Rust and makes JavaScript agree.
json normalizer(const TokenizerOptions& o) {
  const json bert = {{"type", "BertNormalizer"},
                     {"clean_text", true},
                     {"handle_chinese_chars", true},
                     {"strip_accents", strip_accents_value(o)},
                     {"lowercase", o.lowercase}};
  if (!o.lowercase) return bert;
  const json sigma = {{"type", "Replace"}, {"pattern", {{"String", "\u03A3"}}}, {"content", "\u03C3"}};
  return {{"type", "Sequence"}, {"normalizers", {sigma, bert}}};
}

// BertPreTokenizer, after a Split isolating the CJK ideographs beyond U+FFFF (tlm's is_cjk ranges,
// as Google's BERT and Python's BertTokenizer): transformers.js's BertNormalizer walks UTF-16 units
// and misses them all, and the Rust library's misses U+2B820..U+2B91F (its range starts at U+2B920);
// elsewhere it has already spaced them out, and the Split changes nothing.
json pre_tokenizer() {
  const json split = {{"type", "Split"},
                      {"pattern",
                       {{"Regex",
                         "[\U00020000-\U0002A6DF\U0002A700-\U0002B73F\U0002B740-\U0002B81F\U0002B820-"
                         "\U0002CEAF\U0002F800-\U0002FA1F]"}}},
                      {"behavior", "Isolated"},
                      {"invert", false}};
  return {{"type", "Sequence"}, {"pretokenizers", {split, {{"type", "BertPreTokenizer"}}}}};
}

}  // namespace

json hf_tokenizer_json(const Vocab& vocab, const TokenizerOptions& o) {
  json model_vocab = json::object();
  // a repeated token keeps its last id, as tlm's Vocab and Hugging Face's vocab.txt loader do
  for (int32_t id = 0; id < vocab.size(); ++id) model_vocab[vocab.token(id)] = id;
  const std::string cls = vocab.token(vocab.cls_id()), sep = vocab.token(vocab.sep_id());
  json added = json::array();
  for (int32_t id : {vocab.pad_id(), vocab.unk_id(), vocab.cls_id(), vocab.sep_id(), vocab.mask_id()}) {
    added.push_back(added_token(id, vocab.token(id)));
  }
  for (const std::string& t : o.added_tokens) {
    const int32_t id = vocab.find(t);
    if (id < 0) throw Error(fmt::format("{}: the vocabulary has no token \"{}\"", vocab.source(), t));
    added.push_back(added_token(id, t));
  }
  // HF counts the template's special tokens against max_length and truncates the text before
  // adding them, as tlm does: [CLS] + max_len - 2 pieces + [SEP].
  const json truncation =
      o.max_len > 0
          ? json{{"direction", "Right"}, {"max_length", o.max_len}, {"strategy", "LongestFirst"}, {"stride", 0}}
          : json(nullptr);
  return {
      {"version", "1.0"},
      {"truncation", truncation},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", normalizer(o)},
      {"pre_tokenizer", pre_tokenizer()},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {special(cls, 0), sequence("A", 0), special(sep, 0)}},
        {"pair", {special(cls, 0), sequence("A", 0), special(sep, 0), sequence("B", 1), special(sep, 1)}},
        {"special_tokens",
         {{cls, {{"id", cls}, {"ids", {vocab.cls_id()}}, {"tokens", {cls}}}},
          {sep, {{"id", sep}, {"ids", {vocab.sep_id()}}, {"tokens", {sep}}}}}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", vocab.token(vocab.unk_id())},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", o.max_chars_per_word},
        {"vocab", model_vocab}}},
  };
}

json hf_tokenizer_config(const TokenizerOptions& o) {
  return {{"tokenizer_class", "BertTokenizer"},
          {"do_lower_case", o.lowercase},
          {"strip_accents", strip_accents_value(o)},
          {"tokenize_chinese_chars", true},
          {"model_max_length", o.max_len},
          {"additional_special_tokens", o.added_tokens},
          {"unk_token", "[UNK]"},
          {"sep_token", "[SEP]"},
          {"pad_token", "[PAD]"},
          {"cls_token", "[CLS]"},
          {"mask_token", "[MASK]"},
          {"clean_up_tokenization_spaces", true},
          {"padding_side", "right"},
          {"truncation_side", "right"}};
}

}  // namespace tlm
