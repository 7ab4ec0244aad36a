// BERT's tokenizer, exactly as Hugging Face's (tokenizers' BertNormalizer + BertPreTokenizer +
// WordPiece + the [CLS] x [SEP] template): clean text, pad CJK ideographs, strip accents (NFD,
// drop nonspacing marks) and lowercase in uncased mode, split on whitespace and punctuation,
// then greedy longest-match WordPiece with "##" continuations; words over 100 characters and
// words with no segmentation become [UNK].
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tlm/vocab.h"

namespace tlm {

struct TokenizerOptions {
  bool lowercase = true;   // uncased models (bert-base-uncased)
  int strip_accents = -1;  // -1: follow lowercase (HF's default None), 0: no, 1: yes
  int max_len = 0;         // > 0: truncate to this many ids including [CLS] and [SEP]
  int max_chars_per_word = 100;
  // Extra tokens matched literally in the raw text, like the special tokens (HF's added tokens),
  // e.g. FewRel's entity markers [unused0..3]. Each must be in the vocabulary.
  std::vector<std::string> added_tokens;
};

class Tokenizer {
 public:
  Tokenizer(Vocab vocab, TokenizerOptions options);

  const Vocab& vocab() const { return vocab_; }
  const TokenizerOptions& options() const { return options_; }

  // BertNormalizer: the text as WordPiece sees it (UTF-8). Invalid UTF-8 bytes read as U+FFFD,
  // which cleaning drops, as Hugging Face's lossy decoding would.
  std::string normalize(std::string_view text) const;
  // Calls fn(word) for each word after normalisation and BertPreTokenizer, without copying.
  void for_each_word(std::string_view text, const std::function<void(std::string_view)>& fn) const;
  // Word-piece ids of the text without special tokens, appended to `ids`.
  void encode_pieces(std::string_view text, std::vector<int32_t>& ids) const;
  // [CLS] pieces [SEP], truncated to options.max_len when set.
  std::vector<int32_t> encode(std::string_view text) const;

 private:
  void word_pieces(std::string_view word, std::vector<int32_t>& ids) const;
  // Normalises a run of non-ASCII characters, appending to out (cps, tmp: scratch).
  void normalize_run(std::string_view run, std::string& out, std::vector<char32_t>& cps,
                     std::vector<char32_t>& tmp) const;
  Vocab vocab_;
  TokenizerOptions options_;
  bool strip_accents_;
  std::vector<std::pair<std::string, int32_t>> literal_;  // special + added tokens, longest first
  bool literal_first_byte_[256] = {};
};

}  // namespace tlm
