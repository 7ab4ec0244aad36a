// Hugging Face tokenizers' tokenizer.json for tlm's tokenizer, equal in behaviour: BertNormalizer
// (clean text, CJK padding, the run's case and accent handling), BertPreTokenizer, WordPiece with
// "##" continuations and the run's longest word, the [CLS] $A [SEP] template, the special and
// added tokens matched literally, and truncation to the run's sequence length with [SEP] kept.
// Two further steps make Hugging Face's libraries agree with it where they differ from Python's
// BertTokenizer: a Replace of Σ by σ before lowercasing (transformers.js), and a Split isolating
// the CJK ideographs beyond U+FFFF (transformers.js, and the Rust library for U+2B820..U+2B91F).
#pragma once

#include <nlohmann/json.hpp>

#include "tlm/tokenizer.h"

namespace tlm {

// Throws tlm::Error when an added token is not in the vocabulary.
nlohmann::json hf_tokenizer_json(const Vocab& vocab, const TokenizerOptions& options);

// Hugging Face's tokenizer_config.json keys for the same settings (do_lower_case, strip_accents,
// model_max_length, the special tokens), as transformers and transformers.js read them.
nlohmann::json hf_tokenizer_config(const TokenizerOptions& options);

}  // namespace tlm
