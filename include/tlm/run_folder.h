// What a run folder says about itself, for every command that reads or continues a run:
//   vocab.txt               the run's vocabulary (its hash is in manifest.json)
//   tokenizer_config.json   the run's tokenizer settings, in Hugging Face's keys (do_lower_case,
//                           strip_accents, model_max_length, additional_special_tokens)
//   manifest.json           status, vocab_hash, the identifying configuration (run_config), ...
// Loading checks identity, not size: a vocab.txt that is not the one the run was trained with is
// an error, and so is a flag that contradicts the run's tokenizer settings.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tlm/tokenizer.h"

namespace tlm {

// A run's vocabulary and tokenizer settings.
struct RunTokenizer {
  Vocab vocab;
  TokenizerOptions options;  // options.max_len: the run's sequence length
};

// Writes vocab.txt and tokenizer_config.json into dir (atomically).
void save_run_tokenizer(const std::string& dir, const Vocab& vocab, const TokenizerOptions& options);
// Reads them back; vocab.txt must hash to the manifest's vocab_hash.
RunTokenizer load_run_tokenizer(const std::string& dir);
// tokenizer_config.json alone (for comparing settings without loading the vocabulary).
TokenizerOptions load_tokenizer_options(const std::string& dir);
// The same case handling (lowercase and accent stripping) in both: what a pre-trained encoder
// and its fine-tuning must share.
bool same_case_handling(const TokenizerOptions& a, const TokenizerOptions& b);
std::string describe_case(const TokenizerOptions& o);  // "uncased" or "cased"

// Checks flags given to a command that loads the run: a `cased` or `max_len` (0: not given) that
// contradicts the run is an error naming both.
void check_tokenizer_flags(const std::string& dir, const TokenizerOptions& run, std::optional<bool> cased, int max_len);

// manifest.json of a run, or null when there is none.
nlohmann::json read_manifest(const std::string& dir);
// Whether the folder holds a run (a manifest, a checkpoint or a model).
bool holds_run(const std::string& dir);

}  // namespace tlm
