#include <filesystem>

#include "tlm/check.h"
#include "tlm/shard.h"

namespace tlm {

namespace {

std::string tokenizer_params(const Tokenizer& tok) {
  const auto& o = tok.options();
  std::string s = fmt::format("lowercase={} strip_accents={} max_chars={} added=", o.lowercase, o.strip_accents,
                              o.max_chars_per_word);
  for (const auto& t : o.added_tokens) s += t + ",";
  return s;
}

std::string reader_params(const ReaderOptions& r) {
  return fmt::format("format={} field={} classes={} on_bad_row={}", format_name(r.format), r.text_field,
                     r.classes_path.empty() ? std::string("-") : std::to_string(hash_file(r.classes_path)),
                     r.on_bad_row == OnBadRow::kSkip ? "skip" : "stop");
}

std::string stem(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

CorpusSequences corpus_sequences(const std::vector<std::string>& paths, const Tokenizer& tok,
                                 const CorpusSequencesOptions& o) {
  TLM_CHECK(!paths.empty(), "no corpus file given");
  CorpusSequences out;
  auto build = [&] {
    SequenceSet set;
    for (const auto& p : paths) {
      const ReadStats s =
          read_corpus(p, o.reader, [&](Example&& ex) { document_sequences(tok, ex.text, o.max_len, o.mode, set); });
      out.stats.rows += s.rows;
      out.stats.skipped += s.skipped;
      for (const auto& [k, v] : s.skip_reasons) out.stats.skip_reasons[k] += v;
      out.stats.first_skips.insert(out.stats.first_skips.end(), s.first_skips.begin(), s.first_skips.end());
    }
    return set;
  };
  if (o.cache_dir.empty()) {
    out.set = build();
    return out;
  }
  ShardKey key{tok.vocab().hash(), 0, 0};
  for (const auto& p : paths) key.source_hash = hash_combine(key.source_hash, hash_file(p));
  key.params_hash =
      hash_string(fmt::format("corpus v1 {} {} max_len={} mode={}", reader_params(o.reader), tokenizer_params(tok),
                              o.max_len, o.mode == SequenceMode::kFirst ? "first" : "chunk"));
  bool built = false;
  out.set = cached_sequences(o.cache_dir, stem(paths.front()), key, tok.vocab().size(), build, &built);
  out.from_cache = !built;
  return out;
}

CorpusSequences labeled_sequences(const std::string& path, const Tokenizer& tok, const ReaderOptions& reader,
                                  int max_len, const std::string& cache_dir) {
  CorpusSequences out;
  auto build = [&] {
    LabeledData d = read_labeled(path, reader);
    out.stats = d.stats;
    return tokenize_examples(tok, d.examples, d.label_names, max_len);
  };
  if (cache_dir.empty()) {
    out.set = build();
    return out;
  }
  const ShardKey key{
      tok.vocab().hash(), hash_file(path),
      hash_string(fmt::format("labeled v1 {} {} max_len={}", reader_params(reader), tokenizer_params(tok), max_len))};
  bool built = false;
  out.set = cached_sequences(cache_dir, stem(path), key, tok.vocab().size(), build, &built);
  out.from_cache = !built;
  return out;
}

}  // namespace tlm
