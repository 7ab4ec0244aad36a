// Token overlap between a pre-training corpus and a labeled dataset (finding 3 of the paper):
// the share of the dataset's word pieces, and of its words, that the corpus contains.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/readers.h"
#include "tlm/tokenizer.h"

namespace tlm {

// Reads the corpora (with corpus_options) and the dataset (with data_options) and measures,
// with `tok`: token type and occurrence overlap, word type and occurrence overlap, the counts
// behind them, the rows read and skipped, and the definitions in words. An empty corpus or dataset
// is an error.
nlohmann::json measure_overlap(const std::vector<std::string>& corpora, const ReaderOptions& corpus_options,
                               const std::string& data, const ReaderOptions& data_options, const Tokenizer& tok);

}  // namespace tlm
