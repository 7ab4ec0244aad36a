// WordPiece vocabulary training, as Hugging Face's WordPieceTrainer does it: words from BERT's
// normaliser and pre-tokeniser, an alphabet of the most frequent characters (word-initial and
// "##" continuation forms), then byte-pair merges of the most frequent adjacent pieces until
// the vocabulary has the asked size. The layout is bert-base-uncased's: [PAD] 0, [unused0..98]
// 1..99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, then the learned pieces; the [unusedN]
// slots stay free for markers (FewRel's entity markers use [unused0..3]).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tlm/tokenizer.h"

namespace tlm {

struct VocabTrainOptions {
  int32_t size = 8192;            // total tokens, specials and unused slots included
  int64_t min_frequency = 2;      // a merge needs a pair seen at least this often
  int32_t limit_alphabet = 1000;  // most frequent characters kept as single-character pieces
  int64_t max_words = 4000000;    // distinct words held at once; beyond, rare words are pruned
  bool lowercase = true;
};

struct VocabTrainStats {
  int64_t words_seen = 0, distinct_words = 0, pruned_words = 0;
  int64_t alphabet = 0, merges = 0;
  int64_t prune_threshold = 1;  // words counted fewer times than this were dropped for memory
};

class VocabTrainer {
 public:
  explicit VocabTrainer(const VocabTrainOptions& options);
  // Counts the words of one text (normalised and pre-tokenised as BERT does).
  void add_text(std::string_view text);
  // Learns the vocabulary from the words counted so far (none is an error).
  std::vector<std::string> train(VocabTrainStats* stats = nullptr);

 private:
  void prune();
  VocabTrainOptions options_;
  Tokenizer normalizer_;  // only its normalize()/pre-tokenize rules are used
  TokenMap counts_;
  VocabTrainStats stats_;
};

// Writes one token per line, atomically.
void save_vocab(const std::string& path, const std::vector<std::string>& tokens);

}  // namespace tlm
