// tlm fasttext: Debian's fastText program trained on exactly the examples a fine-tuning run
// draws (run_data.h), each setting of a grid tried, scored on the validation and test samples.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
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
#include "tlm/hash.h"
#include "tlm/predictions.h"
#include "tlm/readers.h"
#include "tlm/run_data.h"
#include "tlm/tokenizer.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kLabelPrefix = "__label__";

// The program as given, or found on PATH; an error says how to install it.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    TLM_CHECK(fs::is_regular_file(name) && access(name.c_str(), X_OK) == 0, "--fasttext {}: not an executable file",
              name);
    return fs::absolute(name).string();
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (fs::is_regular_file(p) && access(p.c_str(), X_OK) == 0) return p.string();
  }
  throw Error(fmt::format(
      "{}: not found on PATH; install Debian's fastText (apt-get install fasttext, or make deps) or give --fasttext",
      name));
}

// Runs the program to its end, its standard output into `stdout_path` (stderr: ours, the log).
// It dies with this process (a stopped experiment leaves no fastText writing on).
void run_program(const std::vector<std::string>& args, const std::string& stdout_path) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  TLM_CHECK(pid >= 0, "could not start {}: {}", args[0], std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(130);
    const int fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) _exit(127);
    close(fd);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    TLM_CHECK(errno == EINTR, "waiting for {}: {}", args[0], std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(fmt::format("{} failed ({}): {}", args[0],
                            WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                              : fmt::format("signal {}", WTERMSIG(status)),
                            fmt::join(args, " ")));
  }
}

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
// knows; a label it never saw gets 0. Returns (n, labels) probabilities.
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
    double p = 0;
    while (words >> label >> p) {
      TLM_CHECK(label.rfind(kLabelPrefix, 0) == 0, "{}:{}: \"{}\" is not a label", path, row + 1, label);
      const int k = std::stoi(label.substr(std::strlen(kLabelPrefix)));
      TLM_CHECK(k >= 0 && k < labels && std::isfinite(p) && p >= 0, "{}:{}: bad prediction {} {}", path, row + 1, label,
                p);
      probs[static_cast<size_t>(row) * labels + k] = static_cast<float>(p);
    }
  }
  TLM_CHECK(row == n, "{}: {} prediction lines for {} texts", path, row, n);
  return probs;
}

}  // namespace

json run_fasttext_job(const ResolvedConfig& rc) {
  const json& c = rc.config;
  const std::string out = c.at("out"), train_path = c.at("train"), test_path = c.at("test");
  const std::string classes = c.at("classes"), vocab_path = c.at("vocab");
  // Validate everything before anything is written.
  TLM_CHECK(fs::is_regular_file(train_path), "{}: no such training file", train_path);
  TLM_CHECK(test_path.empty() || fs::is_regular_file(test_path), "{}: no such test file", test_path);
  TLM_CHECK(classes.empty() || fs::is_regular_file(classes), "{}: no such classes file", classes);
  TLM_CHECK(vocab_path.empty() || fs::is_regular_file(vocab_path), "--vocab {}: no such file", vocab_path);
  const std::string program = find_program(c.at("fasttext"));
  const Format format = parse_format(c.at("format"));
  const ReaderOptions ro{.format = format,
                         .text_field = c.at("text_field"),
                         .classes_path = classes,
                         .on_bad_row = parse_on_bad_row(c.at("on_bad_row"))};
  const LabeledData train_all = read_labeled(train_path, ro);
  LabeledData test_all;
  if (!test_path.empty()) {
    test_all = read_labeled(test_path, ro);
    TLM_CHECK(test_all.label_names == train_all.label_names, "{} and {} have different label sets", train_path,
              test_path);
  }
  auto labels_of = [](const LabeledData& d) {
    std::vector<int32_t> l;
    for (const auto& ex : d.examples) l.push_back(ex.label);
    return l;
  };
  const std::vector<int32_t> train_labels = labels_of(train_all), test_labels = labels_of(test_all);
  const LabeledDraw draw = draw_labeled_indices(train_labels, test_path.empty() ? nullptr : &test_labels,
                                                train_all.label_names, labeled_sample_options(c));
  for (const auto& note : draw.capped) fmt::print(stderr, "capped: {}\n", note);
  TLM_CHECK(!draw.train.empty(), "the training set is empty after sampling");
  TLM_CHECK(!draw.test.empty(), "the test sample is empty");
  const LabeledData& test_source = test_path.empty() ? train_all : test_all;
  auto pick = [](const LabeledData& from, const std::vector<int64_t>& idx) {
    std::vector<Example> ex;
    for (int64_t i : idx) ex.push_back(from.examples[i]);
    return ex;
  };
  const std::vector<Example> train = pick(train_all, draw.train), valid = pick(train_all, draw.valid),
                             test = pick(test_source, draw.test);
  const int num_labels = static_cast<int>(train_all.label_names.size());

  // Words as the tiny models' tokenizer splits them; with --vocab, test items named as theirs.
  const int max_len = c.at("max_len");
  const TokenizerOptions tok_options = run_tokenizer_options(c.at("cased"), max_len, format);
  const Vocab vocab = vocab_path.empty()
                          ? Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, "fastText words")
                          : Vocab::load(vocab_path);
  TokenizerOptions word_options = tok_options;
  if (vocab_path.empty()) word_options.added_tokens.clear();  // markers are plain words without a vocabulary
  for (const auto& t : word_options.added_tokens) {
    TLM_CHECK(vocab.find(t) >= 0, "--vocab {} has no {} token, which {} data needs", vocab_path, t,
              format_name(format));
  }
  const Tokenizer tok(vocab, word_options);

  const std::vector<Setting> grid = [&] {
    std::vector<Setting> g;
    for (const auto& lr : c.at("lrs"))
      for (const auto& e : c.at("epochs"))
        for (const auto& n : c.at("word_ngrams")) g.push_back({lr.get<double>(), e.get<int64_t>(), n.get<int64_t>()});
    return g;
  }();

  fs::create_directories(out);
  auto write_lines = [&](const std::string& file, const std::vector<Example>& examples, bool labeled) {
    std::string text;
    for (const auto& ex : examples) {
      if (labeled) text += fmt::format("{}{} ", kLabelPrefix, ex.label);
      text += words_of(tok, ex.text) + "\n";
    }
    write_file_atomic((fs::path(out) / file).string(), text);
  };
  write_lines("train.txt", train, true);
  std::vector<Example> scored = valid;  // predicted in one call per setting: validation, then test
  scored.insert(scored.end(), test.begin(), test.end());
  write_lines("scored.txt", scored, false);
  fmt::print(stderr, "fasttext: {} train, {} validation, {} test examples, {} labels, {} settings ({})\n", train.size(),
             valid.size(), test.size(), num_labels, grid.size(), program);

  std::vector<int32_t> valid_labels, test_labels_drawn;
  for (const auto& ex : valid) valid_labels.push_back(ex.label);
  for (const auto& ex : test) test_labels_drawn.push_back(ex.label);
  // The models of one attempt (a stopped attempt's folder is removed by the next).
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename().string().rfind("models.tmp", 0) == 0) fs::remove_all(e.path());
  }
  const fs::path models = fs::path(out) / fmt::format("models.tmp-{}", getpid());
  fs::create_directories(models);
  json rows = json::array();
  std::map<std::string, std::vector<float>> test_probs;
  int chosen = 0;
  for (size_t g = 0; g < grid.size(); ++g) {
    const Setting& s = grid[g];
    const auto t0 = std::chrono::steady_clock::now();
    const std::string model = (models / "model").string();
    run_program({program,       "supervised",
                 "-input",      (fs::path(out) / "train.txt").string(),
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
                 "-verbose",    "0"},
                (models / "train.out").string());
    const std::string predicted = (models / "predicted.txt").string();
    run_program({program, "predict-prob", model + ".bin", (fs::path(out) / "scored.txt").string(), "-1"}, predicted);
    const std::vector<float> probs = read_probabilities(predicted, static_cast<int64_t>(scored.size()), num_labels);
    const size_t split = valid.size() * num_labels;
    const std::vector<float> pv(probs.begin(), probs.begin() + split), pt(probs.begin() + split, probs.end());
    const double va = accuracy_of(pv, valid_labels, num_labels), ta = accuracy_of(pt, test_labels_drawn, num_labels);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rows.push_back({{"setting", s.name()},
                    {"lr", s.lr},
                    {"epoch", s.epoch},
                    {"word_ngrams", s.word_ngrams},
                    {"valid_accuracy", valid.empty() ? json(nullptr) : json(va)},
                    {"test_accuracy", ta},
                    {"seconds", seconds}});
    test_probs[s.name()] = pt;
    if (!valid.empty() && va > rows[chosen]["valid_accuracy"].get<double>()) chosen = static_cast<int>(g);
    fmt::print(stderr, "fasttext: {}: validation {:.4f}, {:.1f} s\n", s.name(), va, seconds);
  }
  fs::remove_all(models);

  // Per-item test probabilities of every setting (the experiment chooses over seeds), and the
  // setting this run's own validation chose as "model".
  test_probs["model"] = test_probs[rows[chosen]["setting"].get<std::string>()];
  Predictions p;
  if (!vocab_path.empty()) {
    p = predictions_of(tokenize_examples(tok, test, train_all.label_names, max_len), std::move(test_probs));
  } else {
    p.label_names = train_all.label_names;
    p.labels = test_labels_drawn;
    for (const auto& ex : test) {
      const std::string w = words_of(tok, ex.text);
      p.items.push_back(static_cast<int64_t>(hash_bytes(w.data(), w.size())));
    }
    p.probs = std::move(test_probs);
  }
  save_predictions((fs::path(out) / "test_predictions.safetensors").string(), p);
  json skipped = {{"train", train_all.stats.skipped}, {"test", test_all.stats.skipped}};
  const json metrics = {
      {"format", "tlm-fasttext-metrics"},
      {"version", 1},
      {"program", {{"path", program}, {"xxh64", hex16(hash_file(program))}}},
      {"config", c},
      {"labels", train_all.label_names},
      {"train_examples", train.size()},
      {"valid_examples", valid.size()},
      {"test_examples", test.size()},
      {"capped", draw.capped},
      {"skipped_rows", skipped},
      {"items", vocab_path.empty() ? "hash of the words" : "hash of the token ids under " + vocab_path},
      {"grid", rows},
      {"chosen", rows[chosen]["setting"]},
      {"final", {{"valid_accuracy", rows[chosen]["valid_accuracy"]}}},
      {"test", {{"accuracy", rows[chosen]["test_accuracy"]}}},
  };
  write_file_atomic((fs::path(out) / "metrics.json").string(), metrics.dump(2) + "\n");  // last: marks it done
  return metrics;
}

}  // namespace tlm
