// Task test texts kept out of pre-training corpora: a corpus document that contains a test text
// is removed before any use (vocabulary, pre-training, overlap). Texts are compared as BERT's
// uncased normaliser and pre-tokeniser see them, as words (lowercased, accents stripped;
// punctuation of any script, whitespace and BERT's bracketed special tokens such as FewRel's
// [unused0] entity markers ignored): a test text of at least kMinWordsInside words matches
// anywhere inside a document as a run of whole words; a shorter one only a document that is
// exactly it (a two-word gloss inside a longer text is a coincidence, not a leak).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tlm/readers.h"

namespace tlm {

constexpr int kMinWordsInside = 4;

struct DecontaminationReport {
  int64_t documents = 0;                           // read from the corpus
  int64_t skipped = 0;                             // bad rows skipped (the reader's on_bad_row = skip)
  int64_t removed = 0;                             // documents dropped for containing a test text
  int64_t test_texts = 0;                          // distinct normalised test texts looked for
  int64_t test_texts_found = 0;                    // of them, found at least once
  std::map<std::string, int64_t> removed_by_task;  // documents removed, by the first task matched
  std::vector<std::string> examples;               // the first few removals, "document line: test text"
};

// The test texts of one task, named for the report.
struct TestTexts {
  std::string task;
  std::vector<std::string> texts;
};

// Reads `corpus` (in `options`' format) and writes every document that contains none of the test
// texts to `out` (atomically), one document per line with its line breaks as spaces (plain text
// format: tokenisation is the same, since whitespace only separates words).
DecontaminationReport remove_test_texts(const std::string& corpus, const ReaderOptions& options,
                                        const std::vector<TestTexts>& tests, const std::string& out);

}  // namespace tlm
