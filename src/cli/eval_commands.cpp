// tlm eval (one model or a soft committee), tlm predict, tlm overlap.
#include <filesystem>
#include <iostream>
#include <unordered_set>

#include "cli/commands.h"
#include "cli/members.h"
#include "cli/threads.h"
#include "data/line_reader.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/committee.h"
#include "tlm/file_io.h"
#include "tlm/trainer.h"

namespace tlm::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<std::vector<float>> member_probabilities(const Members& m, const SequenceSet& set, int batch) {
  std::vector<std::vector<float>> probs;
  for (const auto& d : m.dirs) {
    auto model = load_model_for(d, set, batch);
    probs.push_back(predict_probs(*model, set, batch));
  }
  return probs;
}

struct EvalArgs {
  std::vector<std::string> models;
  std::string data, format, classes, out;
  int max_len = 128, batch = 64, subsets = 20, threads = 0;
  int64_t per_label = 0;
  uint64_t seed = 1;
  bool cap_per_label = false;
};

void run_eval(const EvalArgs& a) {
  set_threads(a.threads);
  const Members m = load_members(a.models);
  const SequenceSet set =
      labeled_set_for(m, a.data, a.format, a.classes, a.max_len, a.per_label, a.seed, a.cap_per_label);
  TLM_CHECK(set.size() > 0, "{}: no examples to evaluate", a.data);
  const int labels = static_cast<int>(m.labels.size());
  const auto probs = member_probabilities(m, set, a.batch);
  json out = {{"data", a.data}, {"examples", set.size()}, {"labels", m.labels}};
  out["members"] = json::array();
  for (size_t i = 0; i < probs.size(); ++i) {
    const EvalMetrics e = evaluate_probs(probs[i], set.labels, labels);
    out["members"].push_back({{"model", a.models[i]}, {"accuracy", e.accuracy}, {"macro_f1", e.macro_f1}});
  }
  out["committee"] = evaluate_probs(soft_committee(probs), set.labels, labels).to_json(m.labels);
  out["committee"]["members"] = probs.size();
  const auto votes = majority_vote(probs, labels);
  int64_t correct = 0;
  for (size_t i = 0; i < votes.size(); ++i) correct += votes[i] == set.labels[i];
  out["majority_vote"] = {{"accuracy", static_cast<double>(correct) / votes.size()}};
  out["by_size"] = accuracy_by_size(probs, set.labels, labels, a.subsets, a.seed);
  const std::string text = out.dump(2) + "\n";
  if (!a.out.empty()) write_file_atomic(a.out, text);
  fmt::print("{}", text);
}

struct PredictArgs {
  std::vector<std::string> models;
  std::string input;
  bool probs = false;
  int max_len = 128, batch = 64, threads = 0;
};

void run_predict(const PredictArgs& a) {
  set_threads(a.threads);
  const Members m = load_members(a.models);
  const Tokenizer tok(*m.vocab, {});
  std::vector<std::string> texts;
  if (a.input.empty()) {
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);
  } else {
    LineReader in(a.input);
    for (std::string line; in.next(line);) texts.push_back(line);
  }
  std::vector<Example> examples;
  for (auto& t : texts) examples.push_back({t, 0, 0});
  const SequenceSet set = tokenize_examples(tok, examples, m.labels, a.max_len);
  if (set.size() == 0) return;
  const int labels = static_cast<int>(m.labels.size());
  const auto probs = soft_committee(member_probabilities(m, set, a.batch));
  for (int64_t i = 0; i < set.size(); ++i) {
    const float* row = probs.data() + i * labels;
    json j = {{"label", m.labels[std::max_element(row, row + labels) - row]}};
    if (a.probs) {
      json p = json::object();
      for (int c = 0; c < labels; ++c) p[m.labels[c]] = row[c];
      j["probs"] = p;
    }
    fmt::print("{}\n", j.dump());
  }
}

struct OverlapArgs {
  std::vector<std::string> corpora;
  std::string corpus_format = "text", data, format, classes, vocab, out;
};

void run_overlap(const OverlapArgs& a) {
  const Vocab vocab = Vocab::load(a.vocab);
  ReaderOptions ro{.format = parse_format(a.format), .classes_path = a.classes};
  TokenizerOptions to;
  if (ro.format == Format::kFewRel) to.added_tokens = fewrel_markers();
  const Tokenizer tok(vocab, to);
  std::vector<char> corpus_ids(vocab.size(), 0);
  std::unordered_set<std::string> corpus_words;
  std::vector<int32_t> ids;
  ReaderOptions co{.format = parse_format(a.corpus_format), .on_bad_row = OnBadRow::kSkip};
  for (const auto& p : a.corpora) {
    read_corpus(p, co, [&](Example&& ex) {
      ids.clear();
      tok.encode_pieces(ex.text, ids);
      for (int32_t id : ids) corpus_ids[id] = 1;
      tok.for_each_word(ex.text, [&](std::string_view w) { corpus_words.emplace(w); });
    });
  }
  const LabeledData data = read_labeled(a.data, ro);
  std::vector<int64_t> data_id_count(vocab.size(), 0);
  std::unordered_map<std::string, int64_t> data_words;
  for (const auto& ex : data.examples) {
    ids.clear();
    tok.encode_pieces(ex.text, ids);
    for (int32_t id : ids) ++data_id_count[id];
    tok.for_each_word(ex.text, [&](std::string_view w) { ++data_words[std::string(w)]; });
  }
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
  auto share = [](int64_t a_, int64_t b_) { return b_ ? static_cast<double>(a_) / b_ : 0.0; };
  json out = {
      {"corpus", a.corpora},
      {"data", a.data},
      {"vocab", a.vocab},
      {"token_type_overlap", share(types_seen, types)},
      {"token_occurrence_overlap", share(occ_seen, occ)},
      {"word_type_overlap", share(wtypes_seen, wtypes)},
      {"word_occurrence_overlap", share(wocc_seen, wocc)},
      {"counts",
       {{"data_token_types", types}, {"data_tokens", occ}, {"data_word_types", wtypes}, {"data_words", wocc}}},
      {"definitions",
       {{"token_type_overlap",
         "share of the distinct word-piece ids of the dataset (special tokens and [UNK] "
         "excluded) that occur at least once in the corpus"},
        {"token_occurrence_overlap", "share of the dataset's word-piece occurrences whose id occurs in the corpus"},
        {"word_type_overlap",
         "share of the dataset's distinct words (after BERT's normaliser and pre-tokeniser: "
         "lowercased, accents stripped, punctuation split) that occur in the corpus"},
        {"word_occurrence_overlap", "share of the dataset's word occurrences whose word occurs in the corpus"}}}};
  const std::string text = out.dump(2) + "\n";
  if (!a.out.empty()) write_file_atomic(a.out, text);
  fmt::print("{}", text);
}

}  // namespace

void add_eval_commands(CLI::App& app) {
  auto ea = std::make_shared<EvalArgs>();
  auto* ev = app.add_subcommand("eval", "evaluate a classifier, or a soft committee of several, on labeled data");
  ev->add_option("--model", ea->models, "fine-tuned run folder (repeat for a committee)")->required();
  ev->add_option("--data", ea->data, "labeled data file")->required()->check(CLI::ExistingFile);
  ev->add_option("--format", ea->format, "agnews, dbpedia, fewrel or csv")->required();
  ev->add_option("--classes", ea->classes, "class names (csv)");
  ev->add_option("--per-label", ea->per_label, "evaluate on this many examples per label (0: all)");
  ev->add_flag("--cap-per-label", ea->cap_per_label, "take what a short label has instead of failing");
  ev->add_option("--max-len", ea->max_len, "tokens per sequence")->capture_default_str();
  ev->add_option("--batch", ea->batch, "sequences per forward pass")->capture_default_str();
  ev->add_option("--subsets", ea->subsets, "random member subsets per committee size")->capture_default_str();
  ev->add_option("--seed", ea->seed, "seed of sampling and subsets")->capture_default_str();
  ev->add_option("--threads", ea->threads, "threads (0: all cores)");
  ev->add_option("--out", ea->out, "also write the JSON here");
  ev->callback([ea] { run_eval(*ea); });

  auto pa = std::make_shared<PredictArgs>();
  auto* pr = app.add_subcommand("predict", "label texts (stdin or --input, one per line) with a model or committee");
  pr->add_option("--model", pa->models, "fine-tuned run folder (repeat for a committee)")->required();
  pr->add_option("--input", pa->input, "text file (default: stdin)")->check(CLI::ExistingFile);
  pr->add_flag("--probs", pa->probs, "print the probabilities too");
  pr->add_option("--max-len", pa->max_len, "tokens per sequence")->capture_default_str();
  pr->add_option("--batch", pa->batch, "sequences per forward pass")->capture_default_str();
  pr->add_option("--threads", pa->threads, "threads (0: all cores)");
  pr->callback([pa] { run_predict(*pa); });

  auto oa = std::make_shared<OverlapArgs>();
  auto* ov = app.add_subcommand("overlap", "how much of a dataset's tokens and words a corpus covers");
  ov->add_option("--corpus", oa->corpora, "corpus file(s)")->required()->check(CLI::ExistingFile);
  ov->add_option("--corpus-format", oa->corpus_format, "text, paragraphs, jsonl, wikiextractor")->capture_default_str();
  ov->add_option("--data", oa->data, "labeled data file")->required()->check(CLI::ExistingFile);
  ov->add_option("--format", oa->format, "agnews, dbpedia, fewrel or csv")->required();
  ov->add_option("--classes", oa->classes, "class names (csv)");
  ov->add_option("--vocab", oa->vocab, "vocab.txt")->required()->check(CLI::ExistingFile);
  ov->add_option("--out", oa->out, "also write the JSON here");
  ov->callback([oa] { run_overlap(*oa); });
}

}  // namespace tlm::cli
