// tlm vocab train: a WordPiece vocabulary from corpora.
#include <chrono>
#include <filesystem>

#include "cli/commands.h"
#include "cli/job_options.h"
#include "tlm/check.h"
#include "tlm/readers.h"
#include "tlm/vocab_trainer.h"

namespace tlm::cli {

namespace {

int run_vocab_train(const ResolvedConfig& rc) {
  const nlohmann::json& c = rc.config;
  const auto t0 = std::chrono::steady_clock::now();
  VocabTrainOptions o;
  o.size = c.at("size");
  o.min_frequency = c.at("min_frequency");
  o.limit_alphabet = c.at("limit_alphabet");
  o.max_words = c.at("max_words");
  o.lowercase = !c.at("cased").get<bool>();
  const auto corpora = c.at("corpus").get<std::vector<std::string>>();
  for (const auto& p : corpora) TLM_CHECK(std::filesystem::is_regular_file(p), "{}: no such corpus file", p);
  VocabTrainer trainer(o);
  ReaderOptions ro;
  ro.format = parse_format(c.at("format"));
  ro.text_field = c.at("text_field");
  ro.on_bad_row = parse_on_bad_row(c.at("on_bad_row"));
  int64_t docs = 0, skipped = 0;
  for (const auto& path : corpora) {
    const ReadStats s = read_corpus(path, ro, [&](Example&& ex) { trainer.add_text(ex.text); });
    docs += s.rows;
    skipped += s.skipped;
    for (const auto& line : s.first_skips) fmt::print(stderr, "skipped: {}\n", line);
  }
  VocabTrainStats st;
  const auto tokens = trainer.train(&st);
  const std::string out = c.at("out");
  save_vocab(out, tokens);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("tlm vocab train: {} tokens -> {}\n", tokens.size(), out);
  fmt::print("  {} documents ({} skipped as bad rows), {} words, {} distinct", docs, skipped, st.words_seen,
             st.distinct_words);
  if (st.pruned_words) fmt::print(" ({} rare words pruned below count {})", st.pruned_words, st.prune_threshold);
  fmt::print("\n  alphabet {} characters, {} merges, {:.1f} s\n", st.alphabet, st.merges, secs);
  if (static_cast<int32_t>(tokens.size()) < o.size) {
    fmt::print("  note: the corpus supports only {} tokens at min frequency {} ({} asked)\n", tokens.size(),
               o.min_frequency, o.size);
  }
  return 0;
}

}  // namespace

void add_vocab_command(CLI::App& app, int argc, char** argv, int* exit_code) {
  auto* vocab = app.add_subcommand("vocab", "vocabularies");
  vocab->require_subcommand(1);
  add_job_command(*vocab, "train", "vocab", argc, argv, exit_code,
                  [](const ResolvedConfig& c, const std::vector<std::string>&) { return run_vocab_train(c); });
}

}  // namespace tlm::cli
