// Tokenized corpora and labeled datasets through the token-shard cache (shard.h).
#pragma once

#include <string>
#include <vector>

#include "tlm/dataset.h"
#include "tlm/readers.h"
#include "tlm/tokenizer.h"

namespace tlm {

// Tokenized sequences of corpus files (pre-training), through the shard cache: the key covers
// the vocabulary, every source file's bytes and the reader and tokenizer settings.
struct CorpusSequencesOptions {
  ReaderOptions reader;
  int max_len = 128;
  SequenceMode mode = SequenceMode::kFirst;
  std::string cache_dir;  // empty: no cache
};
struct CorpusSequences {
  SequenceSet set;
  ReadStats stats;  // of this read (zero when the cache answered)
  bool from_cache = false;
};
CorpusSequences corpus_sequences(const std::vector<std::string>& paths, const Tokenizer& tok,
                                 const CorpusSequencesOptions& options);

// Tokenized labeled examples of one dataset file ([CLS] text [SEP], truncated), cached likewise.
CorpusSequences labeled_sequences(const std::string& path, const Tokenizer& tok, const ReaderOptions& reader,
                                  int max_len, const std::string& cache_dir);

}  // namespace tlm
