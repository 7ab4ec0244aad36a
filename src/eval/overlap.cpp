#include "tlm/overlap.h"

#include <unordered_map>
#include <unordered_set>

#include "tlm/check.h"

namespace tlm {

using nlohmann::json;

json measure_overlap(const std::vector<std::string>& corpora, const ReaderOptions& corpus_options,
                     const std::string& data, const ReaderOptions& data_options, const Tokenizer& tok) {
  const Vocab& vocab = tok.vocab();
  std::vector<char> corpus_ids(vocab.size(), 0);
  std::unordered_set<std::string> corpus_words;
  std::vector<int32_t> ids;
  ReadStats corpus_stats;
  for (const auto& p : corpora) {
    const ReadStats s = read_corpus(p, corpus_options, [&](Example&& ex) {
      ids.clear();
      tok.encode_pieces(ex.text, ids);
      for (int32_t id : ids) corpus_ids[id] = 1;
      tok.for_each_word(ex.text, [&](std::string_view w) { corpus_words.emplace(w); });
    });
    corpus_stats.rows += s.rows;
    corpus_stats.skipped += s.skipped;
  }
  TLM_CHECK(!corpus_words.empty(), "{}: the corpus has no words ({} documents read, {} skipped); wrong file or format?",
            corpora.front(), corpus_stats.rows, corpus_stats.skipped);
  const LabeledData labeled = read_labeled(data, data_options);
  std::vector<int64_t> data_id_count(vocab.size(), 0);
  std::unordered_map<std::string, int64_t> data_words;
  for (const auto& ex : labeled.examples) {
    ids.clear();
    tok.encode_pieces(ex.text, ids);
    for (int32_t id : ids) ++data_id_count[id];
    tok.for_each_word(ex.text, [&](std::string_view w) { ++data_words[std::string(w)]; });
  }
  TLM_CHECK(!data_words.empty(), "{}: the dataset has no words ({} examples read, {} skipped)", data,
            labeled.stats.rows, labeled.stats.skipped);
  int64_t types = 0, types_seen = 0, occ = 0, occ_seen = 0;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (data_id_count[id] == 0 || vocab.is_special(id)) continue;  // [UNK] included in specials
    ++types;
    occ += data_id_count[id];
    if (corpus_ids[id]) {
      ++types_seen;
      occ_seen += data_id_count[id];
    }
  }
  int64_t wtypes = 0, wtypes_seen = 0, wocc = 0, wocc_seen = 0;
  for (const auto& [w, n] : data_words) {
    ++wtypes;
    wocc += n;
    if (corpus_words.count(w)) {
      ++wtypes_seen;
      wocc_seen += n;
    }
  }
  auto share = [](int64_t a, int64_t b) { return b ? static_cast<double>(a) / b : 0.0; };
  return {{"corpus", corpora},
          {"data", data},
          {"token_type_overlap", share(types_seen, types)},
          {"token_occurrence_overlap", share(occ_seen, occ)},
          {"word_type_overlap", share(wtypes_seen, wtypes)},
          {"word_occurrence_overlap", share(wocc_seen, wocc)},
          {"counts",
           {{"data_token_types", types}, {"data_tokens", occ}, {"data_word_types", wtypes}, {"data_words", wocc}}},
          {"read",
           {{"corpus_documents", corpus_stats.rows},
            {"corpus_skipped", corpus_stats.skipped},
            {"data_examples", labeled.stats.rows},
            {"data_skipped", labeled.stats.skipped}}},
          {"definitions",
           {{"token_type_overlap",
             "share of the distinct word-piece ids of the dataset (special tokens and [UNK] "
             "excluded) that occur at least once in the corpus"},
            {"token_occurrence_overlap", "share of the dataset's word-piece occurrences whose id occurs in the corpus"},
            {"word_type_overlap",
             "share of the dataset's distinct words (after BERT's normaliser and pre-tokeniser: "
             "lowercased and accents stripped when uncased, punctuation split) that occur in the corpus"},
            {"word_occurrence_overlap", "share of the dataset's word occurrences whose word occurs in the corpus"}}}};
}

}  // namespace tlm
