// Hugging Face tokenizers' tokenizer.json for tlm's tokenizer, equal in behaviour: BertNormalizer
// (clean text, CJK padding, the run's case and accent handling), BertPreTokenizer, WordPiece with
// "##" continuations and the run's longest word, the [CLS] $A [SEP] template, the special and
// added tokens matched literally, and truncation to the run's sequence length with [SEP] kept.
// Two steps that change nothing in the Rust library make transformers.js's JavaScript port agree
// with it too: a Replace of Σ by σ before lowercasing, and a Split isolating CJK ideographs
// beyond U+FFFF (see the .cpp).
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
