// tlm fasttext: Debian's fastText program trained on exactly the examples a fine-tuning run
// draws (run_data.h), each setting of a grid tried, scored on the validation and test samples.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tlm/check.h"
#include "tlm/dataset.h"
#include "tlm/eval_jobs.h"
#include "tlm/evaluate.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/hash.h"
#include "tlm/job_config.h"
#include "tlm/predictions.h"
#include "tlm/process.h"
#include "tlm/readers.h"
#include "tlm/run_data.h"
#include "tlm/tokenizer.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kLabelPrefix = "__label__";

}  // namespace

std::string find_fasttext_program(const std::string& name) { return find_program(name, kFastTextInstall); }

namespace {

// fastText's input: BERT's normalised, pre-tokenized words (the tiny models' words before
// WordPiece), separated by spaces, so both read the same text.
std::string words_of(const Tokenizer& tok, const std::string& text) {
  std::string line;
  tok.for_each_word(text, [&](std::string_view w) {
    if (!line.empty()) line += ' ';
    line.append(w);
  });
  return line;
}

struct Setting {
  double lr;
  int64_t epoch, word_ngrams;
  std::string name() const { return fmt::format("lr={} epoch={} word_ngrams={}", lr, epoch, word_ngrams); }
};

// predict-prob's output for `n` texts: per line "__label__<i> <p> ..." with every label the model
// knows; a label it never saw gets 0. fastText prints exp(log(p + 1e-5)), so a certain label reads
// 1.00001. Returns (n, labels) probabilities.
std::vector<float> read_probabilities(const std::string& path, int64_t n, int labels) {
  std::ifstream in(path);
  TLM_CHECK(in.good(), "{}: cannot read fastText's predictions", path);
  std::vector<float> probs(static_cast<size_t>(n) * labels, 0.0f);
  std::string line;
  int64_t row = 0;
  for (; std::getline(in, line); ++row) {
    TLM_CHECK(row < n, "{}: more prediction lines than the {} texts given", path, n);
    std::istringstream words(line);
    std::string label;
    std::string prob;
    while (words >> label) {
      int k = -1;
      const char* end = label.data() + label.size();
      const bool is_label = label.rfind(kLabelPrefix, 0) == 0 &&
                            std::from_chars(label.data() + std::strlen(kLabelPrefix), end, k).ptr == end;
      double p = -1;
      const bool has_prob = static_cast<bool>(words >> prob) &&
                            std::from_chars(prob.data(), prob.data() + prob.size(), p).ptr == prob.data() + prob.size();
      TLM_CHECK(is_label && k >= 0 && k < labels && has_prob && std::isfinite(p) && p >= 0 && p <= 1.0 + 2e-5,
                "{}:{}: \"{} {}\" is not a label of the {} and its probability", path, row + 1, label, prob, labels);
      probs[static_cast<size_t>(row) * labels + k] = static_cast<float>(p);
    }
  }
  TLM_CHECK(row == n, "{}: {} prediction lines for {} texts", path, row, n);
  return probs;
}

// The examples a fine-tuning run with these keys draws (run_data.h), as text.
struct Samples {
  std::vector<Example> train, valid, test;
  std::vector<std::string> label_names, capped;
  int64_t skipped_train = 0, skipped_test = 0;
};

Samples draw_samples(const json& c) {
  const std::string train_path = c.at("train"), test_path = c.at("test");
  const ReaderOptions ro{.format = parse_format(c.at("format")),
                         .text_field = c.at("text_field"),
                         .classes_path = c.at("classes"),
                         .on_bad_row = parse_on_bad_row(c.at("on_bad_row"))};
  const LabeledData train_all = read_labeled(train_path, ro);
  LabeledData test_all;
  if (!test_path.empty()) {
    test_all = read_labeled(test_path, ro);
    TLM_CHECK(test_all.label_names == train_all.label_names, "{} and {} have different label sets", train_path,
              test_path);
  }
  const std::vector<int32_t> train_labels = labels_of(train_all.examples), test_labels = labels_of(test_all.examples);
  const LabeledDraw draw = draw_labeled_indices(train_labels, test_path.empty() ? nullptr : &test_labels,
                                                train_all.label_names, labeled_sample_options(c));
  auto pick = [](const LabeledData& from, const std::vector<int64_t>& idx) {
    std::vector<Example> ex;
    for (int64_t i : idx) ex.push_back(from.examples[i]);
    return ex;
  };
  Samples out{pick(train_all, draw.train),
              pick(train_all, draw.valid),
              pick(test_path.empty() ? train_all : test_all, draw.test),
              train_all.label_names,
              draw.capped,
              train_all.stats.skipped,
              test_all.stats.skipped};
  TLM_CHECK(!out.train.empty(), "the training set is empty after sampling");
  TLM_CHECK(!out.test.empty(), "the test sample is empty");
  return out;
}

// Per-item probabilities of `examples`, the items named by their token ids under --vocab as the
// tiny models' runs name them (else by a hash of their words).
Predictions predictions_for(const std::vector<Example>& examples, const std::vector<std::string>& label_names,
                            const Tokenizer& tok, bool by_token_ids, int max_len,
                            std::map<std::string, std::vector<float>> probs) {
  if (by_token_ids) return predictions_of(tokenize_examples(tok, examples, label_names, max_len), std::move(probs));
  Predictions p;
  p.label_names = label_names;
  p.labels = labels_of(examples);
  for (const auto& ex : examples) {
    const std::string w = words_of(tok, ex.text);
    p.items.push_back(static_cast<int64_t>(hash_bytes(w.data(), w.size())));
  }
  p.probs = std::move(probs);
  return p;
}

// What a run's work is: the schema's identity of its configuration, its data files' hashes and
// the fastText program's.
json run_identity(const json& c, const std::string& program) {
  json id = {
      {"config", job_schema("fasttext").identity(c)}, {"program", hex16(hash_file(program))}, {"data", json::object()}};
  for (const char* key : {"train", "test", "classes", "vocab"}) {
    const std::string path = c.at(key);
    if (!path.empty()) id["data"][path] = hex16(hash_file(path));
  }
  return id;
}

// A folder that already holds metrics.json: the same work finished returns it (its outputs
// checked); a folder of other work is refused, naming what differs.
json finished_run(const std::string& out, const json& identity) {
  const json done = read_json_file((fs::path(out) / "metrics.json").string());
  TLM_CHECK(done.contains("identity") && done.contains("grid"),
            "--out {}: metrics.json is not a finished fastText run's (damaged?); remove the folder", out);
  const json& was = done["identity"];
  if (was == identity) {
    load_predictions((fs::path(out) / "test_predictions.safetensors").string());
    if (done.value("valid_examples", 0) > 0)
      load_predictions((fs::path(out) / "valid_predictions.safetensors").string());
    fmt::print(stderr, "fasttext: {} has finished already\n", out);
    return done;
  }
  std::vector<std::string> differs;
  for (const auto& [k, v] : identity["config"].items()) {
    if (was["config"].value(k, json()) != v) differs.push_back(flag_of(k));
  }
  for (const auto& [k, v] : was["config"].items()) {
    if (!identity["config"].contains(k)) differs.push_back(flag_of(k));
  }
  if (was["data"] != identity["data"]) differs.push_back("the data files");
  if (was["program"] != identity["program"]) differs.push_back("the fastText program");
  throw Error(
      fmt::format("--out {} holds a finished fastText run of other work ({} differ); give another --out, or "
                  "remove that folder",
                  out, fmt::join(differs, ", ")));
}

// Removes a folder when it goes out of scope, however the scope is left.
struct RemovedAtExit {
  fs::path dir;
  ~RemovedAtExit() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

// fastText's training command for one setting of the grid.
std::vector<std::string> train_command(const std::string& program, const json& c, const Setting& s,
                                       const std::string& input, const std::string& model) {
  return {program,       "supervised",
          "-input",      input,
          "-output",     model,
          "-lr",         fmt::format("{}", s.lr),
          "-epoch",      std::to_string(s.epoch),
          "-wordNgrams", std::to_string(s.word_ngrams),
          "-dim",        std::to_string(c.at("dim").get<int64_t>()),
          "-bucket",     std::to_string(c.at("bucket").get<int64_t>()),
          "-minCount",   std::to_string(c.at("min_count").get<int64_t>()),
          "-loss",       "softmax",
          "-thread",     "1",
          "-seed",       std::to_string(c.at("seed").get<int64_t>()),
          "-verbose",    "0"};
}

}  // namespace

json run_fasttext_job(const ResolvedConfig& rc) {
  const json& c = rc.config;
  const std::string out = c.at("out"), vocab_path = c.at("vocab");
  // Validate everything before anything is written.
  for (const char* key : {"train", "test", "classes", "vocab"}) {
    const std::string path = c.at(key);
    TLM_CHECK(path.empty() || fs::is_regular_file(path), "{} {}: no such file", flag_of(key), path);
  }
  TLM_CHECK(!fs::exists(out) || fs::is_directory(out), "--out {}: a file, not a folder", out);
  const std::string program = find_fasttext_program(c.at("fasttext"));
  const json identity = run_identity(c, program);
  const Samples samples = draw_samples(c);
  for (const auto& note : samples.capped) fmt::print(stderr, "capped: {}\n", note);
  const Format format = parse_format(c.at("format"));
  const int num_labels = static_cast<int>(samples.label_names.size());

  // Words as the tiny models' tokenizer splits them; with --vocab, items named as theirs.
  const int max_len = c.at("max_len");
  TokenizerOptions word_options = run_tokenizer_options(c.at("cased"), max_len, format);
  const Vocab vocab = vocab_path.empty()
                          ? Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, "fastText words")
                          : Vocab::load(vocab_path);
  if (vocab_path.empty()) word_options.added_tokens.clear();  // markers are plain words without a vocabulary
  for (const auto& t : word_options.added_tokens) {
    TLM_CHECK(vocab.find(t) >= 0, "--vocab {} has no {} token, which {} data needs", vocab_path, t,
              format_name(format));
  }
  const Tokenizer tok(vocab, word_options);

  std::vector<Setting> grid;
  for (const auto& lr : c.at("lrs"))
    for (const auto& e : c.at("epochs"))
      for (const auto& n : c.at("word_ngrams")) grid.push_back({lr.get<double>(), e.get<int64_t>(), n.get<int64_t>()});

  fs::create_directories(out);
  const FolderLock lock(out, "fastText run");  // one run in a folder at a time
  const fs::path metrics_path = fs::path(out) / "metrics.json";
  if (fs::exists(metrics_path)) return finished_run(out, identity);

  auto write_lines = [&](const std::string& file, const std::vector<Example>& examples, bool labeled) {
    std::string text;
    for (const auto& ex : examples) {
      if (labeled) text += fmt::format("{}{} ", kLabelPrefix, ex.label);
      text += words_of(tok, ex.text) + "\n";
    }
    write_file_atomic((fs::path(out) / file).string(), text);
  };
  write_lines("train.txt", samples.train, true);
  std::vector<Example> scored = samples.valid;  // predicted in one call per setting: validation, then test
  scored.insert(scored.end(), samples.test.begin(), samples.test.end());
  write_lines("scored.txt", scored, false);
  fmt::print(stderr, "fasttext: {} train, {} validation, {} test examples, {} labels, {} settings ({})\n",
             samples.train.size(), samples.valid.size(), samples.test.size(), num_labels, grid.size(), program);

  const std::vector<int32_t> valid_labels = labels_of(samples.valid), test_labels = labels_of(samples.test);
  // The models of this attempt, removed however it ends (a killed attempt's, by the next: the
  // lock says no other process is using them).
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename().string().rfind("models.tmp", 0) == 0) fs::remove_all(e.path());
  }
  const fs::path models = fs::path(out) / fmt::format("models.tmp-{}", getpid());
  fs::create_directories(models);
  const RemovedAtExit models_guard{models};
  json rows = json::array();
  std::map<std::string, std::vector<float>> valid_probs, test_probs;
  int chosen = -1;
  for (size_t g = 0; g < grid.size(); ++g) {
    const Setting& s = grid[g];
    const auto t0 = std::chrono::steady_clock::now();
    const std::string model = (models / "model").string(), predicted = (models / "predicted.txt").string();
    json row = {{"setting", s.name()}, {"lr", s.lr}, {"epoch", s.epoch}, {"word_ngrams", s.word_ngrams}};
    try {
      run_program(train_command(program, c, s, (fs::path(out) / "train.txt").string(), model),
                  (models / "train.out").string());
    } catch (const ProgramFailed& e) {
      // fastText aborts ("Encountered NaN") when training diverges, a learning rate too high for
      // the data: that setting is recorded as failed and takes no part in any choice. Any other
      // failure stops the run.
      if (e.signal != SIGABRT) throw;
      row["failed"] = e.what();
      row["valid_accuracy"] = row["test_accuracy"] = nullptr;
      rows.push_back(row);
      fmt::print(stderr, "fasttext: {}: FAILED ({})\n", s.name(), e.what());
      continue;
    }
    run_program({program, "predict-prob", model + ".bin", (fs::path(out) / "scored.txt").string(), "-1"}, predicted);
    const std::vector<float> probs = read_probabilities(predicted, static_cast<int64_t>(scored.size()), num_labels);
    const size_t split = samples.valid.size() * num_labels;
    valid_probs[s.name()].assign(probs.begin(), probs.begin() + split);
    test_probs[s.name()].assign(probs.begin() + split, probs.end());
    const double va = accuracy_of(valid_probs[s.name()], valid_labels, num_labels);
    row["valid_accuracy"] = samples.valid.empty() ? json(nullptr) : json(va);
    row["test_accuracy"] = accuracy_of(test_probs[s.name()], test_labels, num_labels);
    row["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // This run's own choice: the best validation accuracy, the first of ties.
    if (chosen < 0 || (!samples.valid.empty() && va > rows[chosen]["valid_accuracy"].get<double>())) {
      chosen = static_cast<int>(g);
    }
    rows.push_back(row);
    fmt::print(stderr, "fasttext: {}: validation {:.4f}, {:.1f} s\n", s.name(), va, row["seconds"].get<double>());
  }
  TLM_CHECK(chosen >= 0, "fasttext: every setting of the grid failed (see above)");

  // Per-item probabilities of every setting (the experiment chooses over seeds); the setting this
  // run's own validation chose is also "model".
  test_probs["model"] = test_probs[rows[chosen]["setting"].get<std::string>()];
  const bool by_ids = !vocab_path.empty();
  save_predictions((fs::path(out) / "test_predictions.safetensors").string(),
                   predictions_for(samples.test, samples.label_names, tok, by_ids, max_len, std::move(test_probs)));
  if (!samples.valid.empty()) {
    save_predictions((fs::path(out) / "valid_predictions.safetensors").string(),
                     predictions_for(samples.valid, samples.label_names, tok, by_ids, max_len, std::move(valid_probs)));
  }
  const json metrics = {
      {"format", "tlm-fasttext-metrics"},
      {"version", 1},
      {"identity", identity},
      {"program", {{"path", program}, {"xxh64", hex16(hash_file(program))}}},
      {"config", c},
      {"labels", samples.label_names},
      {"train_examples", samples.train.size()},
      {"valid_examples", samples.valid.size()},
      {"test_examples", samples.test.size()},
      {"capped", samples.capped},
      {"skipped_rows", {{"train", samples.skipped_train}, {"test", samples.skipped_test}}},
      {"items", by_ids ? "hash of the token ids under " + vocab_path : "hash of the words"},
      {"grid", rows},
      {"chosen", rows[chosen]["setting"]},
      {"final", {{"valid_accuracy", rows[chosen]["valid_accuracy"]}}},
      {"test", {{"accuracy", rows[chosen]["test_accuracy"]}}},
  };
  write_file_atomic(metrics_path.string(), metrics.dump(2) + "\n");  // last: marks it done
  return metrics;
}

}  // namespace tlm
