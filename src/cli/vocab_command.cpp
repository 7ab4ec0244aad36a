#include <chrono>

#include "cli/commands.h"
#include "tlm/check.h"
#include "tlm/readers.h"
#include "tlm/vocab_trainer.h"

namespace tlm::cli {

namespace {

struct VocabArgs {
  std::vector<std::string> corpora;
  std::string format = "text", text_field = "text", out, on_bad_row = "stop";
  VocabTrainOptions options;
  bool cased = false;
};

OnBadRow parse_on_bad_row(const std::string& s) {
  if (s == "stop") return OnBadRow::kStop;
  if (s == "skip") return OnBadRow::kSkip;
  throw Error(fmt::format("--on-bad-row must be stop or skip, got \"{}\"", s));
}

void run_vocab_train(VocabArgs a) {
  const auto t0 = std::chrono::steady_clock::now();
  a.options.lowercase = !a.cased;
  VocabTrainer trainer(a.options);
  ReaderOptions ro;
  ro.format = parse_format(a.format);
  ro.text_field = a.text_field;
  ro.on_bad_row = parse_on_bad_row(a.on_bad_row);
  int64_t docs = 0, skipped = 0;
  for (const auto& path : a.corpora) {
    const ReadStats s = read_corpus(path, ro, [&](Example&& ex) { trainer.add_text(ex.text); });
    docs += s.rows;
    skipped += s.skipped;
    for (const auto& line : s.first_skips) fmt::print(stderr, "skipped: {}\n", line);
  }
  VocabTrainStats st;
  const auto tokens = trainer.train(&st);
  save_vocab(a.out, tokens);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("tlm vocab train: {} tokens -> {}\n", tokens.size(), a.out);
  fmt::print("  {} documents ({} skipped as bad rows), {} words, {} distinct", docs, skipped, st.words_seen,
             st.distinct_words);
  if (st.pruned_words) fmt::print(" ({} rare words pruned below count {})", st.pruned_words, st.prune_threshold);
  fmt::print("\n  alphabet {} characters, {} merges, {:.1f} s\n", st.alphabet, st.merges, secs);
  if (static_cast<int32_t>(tokens.size()) < a.options.size) {
    fmt::print("  note: the corpus supports only {} tokens at min frequency {} ({} asked)\n", tokens.size(),
               a.options.min_frequency, a.options.size);
  }
}

}  // namespace

void add_vocab_command(CLI::App& app) {
  auto* vocab = app.add_subcommand("vocab", "vocabularies");
  vocab->require_subcommand(1);
  auto args = std::make_shared<VocabArgs>();
  auto* train = vocab->add_subcommand("train", "learn a WordPiece vocabulary (bert-base id layout) from a corpus");
  train->add_option("--corpus", args->corpora, "corpus file(s), plain or gzip")->required()->check(CLI::ExistingFile);
  train->add_option("--format", args->format, "text, paragraphs, jsonl or wikiextractor")->capture_default_str();
  train->add_option("--text-field", args->text_field, "JSON Lines text field")->capture_default_str();
  train->add_option("--size", args->options.size, "vocabulary size, specials included")
      ->capture_default_str()
      ->check(CLI::Range(110, 1 << 24));
  train->add_option("--min-frequency", args->options.min_frequency, "least count of a merged pair")
      ->capture_default_str();
  train->add_option("--limit-alphabet", args->options.limit_alphabet, "most frequent characters kept")
      ->capture_default_str();
  train->add_option("--max-words", args->options.max_words, "distinct words held in memory")->capture_default_str();
  train->add_flag("--cased", args->cased, "keep case and accents");
  train->add_option("--on-bad-row", args->on_bad_row, "stop or skip (skipped rows are counted)")->capture_default_str();
  train->add_option("--out", args->out, "vocab.txt to write")->required();
  train->callback([args] { run_vocab_train(*args); });
}

}  // namespace tlm::cli
