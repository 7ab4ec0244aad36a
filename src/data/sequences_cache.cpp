#include "tlm/sequences_cache.h"

#include <filesystem>

#include "tlm/check.h"
#include "tlm/hash.h"
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

nlohmann::json stats_to_json(const ReadStats& s) {
  return {{"rows", s.rows}, {"skipped", s.skipped}, {"skip_reasons", s.skip_reasons}, {"first_skips", s.first_skips}};
}

ReadStats stats_from_json(const nlohmann::json& j) {
  ReadStats s;
  s.rows = j.value("rows", int64_t{0});
  s.skipped = j.value("skipped", int64_t{0});
  s.skip_reasons = j.value("skip_reasons", std::map<std::string, int64_t>{});
  s.first_skips = j.value("first_skips", std::vector<std::string>{});
  return s;
}

// The shard cache with the build's read statistics kept beside the shard, so a cached answer
// still reports how many bad rows the build skipped.
void through_cache(const std::string& dir, const std::string& name, const ShardKey& key, int32_t vocab_size,
                   const std::function<SequenceSet()>& build, CorpusSequences& out) {
  bool built = false;
  nlohmann::json notes;
  out.set = cached_sequences(
      dir, name, key, vocab_size,
      [&] {
        SequenceSet set = build();
        notes = stats_to_json(out.stats);
        return set;
      },
      &built, &notes);
  out.from_cache = !built;
  out.stats = stats_from_json(notes);
}

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
  through_cache(o.cache_dir, stem(paths.front()), key, tok.vocab().size(), build, out);
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
  through_cache(cache_dir, stem(path), key, tok.vocab().size(), build, out);
  return out;
}

}  // namespace tlm
