// tlm pretrain and tlm finetune.
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "cli/run_config.h"
#include "cli/threads.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/shard.h"
#include "tlm/trainer.h"

namespace tlm::cli {

namespace fs = std::filesystem;
using nlohmann::json;
using K = RunConfigOptions::Kind;

namespace {

void add_model_options(RunConfigOptions& r) {
  r.add("layers", K::kInt, 2, "encoder layers");
  r.add("hidden", K::kInt, 128, "hidden size");
  r.add("heads", K::kInt, 2, "attention heads");
  r.add("ffn", K::kInt, 0, "FFN size (0: 4 x hidden)");
  r.add("dropout", K::kFloat, 0.1, "hidden and attention dropout");
}

void add_train_options(RunConfigOptions& r, double lr, int epochs) {
  r.add("max-len", K::kInt, 128, "tokens per sequence, [CLS] and [SEP] included");
  r.add("epochs", K::kInt, epochs, "passes over the training set");
  r.add("batch", K::kInt, 32, "sequences per step");
  r.add("lr", K::kFloat, lr, "peak learning rate (AdamW)");
  r.add("weight-decay", K::kFloat, 0.01, "AdamW weight decay (all parameters, as the paper)");
  r.add("warmup", K::kFloat, 0.0, "warmup: share of the steps if < 1, else steps");
  r.add("clip", K::kFloat, 1.0, "global gradient-norm clipping (0: off)");
  r.add("max-steps", K::kInt, 0, "stop after this many steps (0: all epochs)");
  r.add("seed", K::kInt, 1, "seed of init, data order, masks and dropout");
  r.add("threads", K::kInt, 0, "threads (0: all cores)");
  r.add("checkpoint-every", K::kInt, 0, "steps between checkpoints (0: only at the end)");
  r.add("keep-checkpoints", K::kInt, 2, "checkpoints kept");
  r.add("log-every", K::kInt, 10, "steps between log lines");
  r.add("on-bad-row", K::kString, "stop", "stop or skip (skipped rows are counted)");
  r.add("cache-dir", K::kString, "", "token-shard cache (default: <out>/cache)");
  r.add("cased", K::kFlag, false, "keep case and accents");
  r.add("out", K::kString, nullptr, "run folder");
  r.add("resume", K::kString, "", "run folder to continue from its last checkpoint (the run's --out)");
}

BertConfig model_config(const json& c, const Vocab& vocab) {
  BertConfig m;
  m.vocab_size = vocab.size();
  m.num_hidden_layers = c.at("layers");
  m.hidden_size = c.at("hidden");
  m.num_attention_heads = c.at("heads");
  m.intermediate_size = c.at("ffn").get<int>() > 0 ? c.at("ffn").get<int>() : 4 * m.hidden_size;
  m.max_position_embeddings = std::max(512, c.at("max_len").get<int>());
  m.hidden_dropout_prob = m.attention_probs_dropout_prob = c.at("dropout");
  m.pad_token_id = vocab.pad_id();
  m.unk_token_id = vocab.unk_id();
  m.cls_token_id = vocab.cls_id();
  m.sep_token_id = vocab.sep_id();
  m.mask_token_id = vocab.mask_id();
  return m;
}

TrainOptions train_options(const json& c) {
  TrainOptions o;
  o.epochs = c.at("epochs");
  o.batch = c.at("batch");
  o.lr = c.at("lr");
  o.weight_decay = c.at("weight_decay");
  o.warmup = c.at("warmup");
  o.clip = c.at("clip");
  o.max_steps = c.at("max_steps");
  o.seed = c.at("seed");
  o.checkpoint_every = c.at("checkpoint_every");
  o.keep_checkpoints = c.at("keep_checkpoints");
  o.log_every = std::max<int64_t>(1, c.at("log_every").get<int64_t>());
  return o;
}

// --resume DIR continues the run in DIR: it is the output folder (and --out, if given, must agree).
void resolve_resume(json& c) {
  const std::string resume = c.at("resume");
  if (resume.empty()) return;
  const std::string out = c.at("out").is_string() ? c.at("out").get<std::string>() : "";
  TLM_CHECK(out.empty() || fs::path(out).lexically_normal() == fs::path(resume).lexically_normal(),
            "--resume {} and --out {} name different runs", resume, out);
  c["out"] = resume;
}

std::string required(const json& c, const char* key) {
  if (!c.contains(key) || c[key].is_null() || (c[key].is_string() && c[key].get<std::string>().empty()) ||
      (c[key].is_array() && c[key].empty())) {
    throw Error(fmt::format("--{} is required", [&] {
      std::string k = key;
      for (auto& ch : k) ch = ch == '_' ? '-' : ch;
      return k;
    }()));
  }
  return c[key].is_array() ? c[key][0].get<std::string>() : c[key].get<std::string>();
}

OnBadRow on_bad_row(const json& c) {
  const std::string v = c.at("on_bad_row");
  if (v == "stop") return OnBadRow::kStop;
  if (v == "skip") return OnBadRow::kSkip;
  throw Error(fmt::format("--on-bad-row must be stop or skip, got \"{}\"", v));
}

std::string cache_dir(const json& c) {
  const std::string d = c.at("cache_dir");
  return d.empty() ? (fs::path(c.at("out").get<std::string>()) / "cache").string() : d;
}

// A vocabulary copied into every run folder, so later commands find the run's own tokenizer.
void keep_vocab(const std::string& out, const Vocab& v) {
  fs::create_directories(out);
  std::string text;
  for (const auto& t : v.tokens()) text += t + "\n";
  write_file_atomic((fs::path(out) / "vocab.txt").string(), text);
}

void report_skips(const ReadStats& s, const std::string& what) {
  if (s.skipped == 0) return;
  fmt::print(stderr, "{}: skipped {} bad rows:", what, s.skipped);
  for (const auto& [reason, n] : s.skip_reasons) fmt::print(stderr, " {} {};", reason, n);
  fmt::print(stderr, "\n");
}

// The resolved configuration with threads applied, or nothing when --dump-config printed it.
std::optional<json> resolved_config(const RunConfigOptions& r) {
  json c = r.resolve();
  resolve_resume(c);
  if (r.dump_requested()) {
    fmt::print("{}\n", c.dump(2));
    return std::nullopt;
  }
  set_threads(c.at("threads"));
  return c;
}

int run_pretrain(const RunConfigOptions& r) {
  const auto resolved = resolved_config(r);
  if (!resolved) return 0;
  const json& c = *resolved;
  const std::string out = required(c, "out");
  const Vocab vocab = Vocab::load(required(c, "vocab"));
  const Tokenizer tok(vocab, TokenizerOptions{.lowercase = !c.at("cased").get<bool>()});
  CorpusSequencesOptions co;
  co.reader.format = parse_format(c.at("format"));
  co.reader.text_field = c.at("text_field");
  co.reader.on_bad_row = on_bad_row(c);
  co.max_len = c.at("max_len");
  const std::string mode = c.at("seq_mode");
  TLM_CHECK(mode == "first" || mode == "chunk", "--seq-mode must be first or chunk, got \"{}\"", mode);
  co.mode = mode == "first" ? SequenceMode::kFirst : SequenceMode::kChunk;
  co.cache_dir = cache_dir(c);
  const auto corpora = c.at("corpus").get<std::vector<std::string>>();
  TLM_CHECK(!corpora.empty(), "--corpus is required");
  for (const auto& p : corpora) TLM_CHECK(fs::exists(p), "{}: no such corpus file", p);
  const CorpusSequences all = corpus_sequences(corpora, tok, co);
  report_skips(all.stats, "corpus");
  TLM_CHECK(all.set.size() > 1, "the corpus gave {} sequences: nothing to pre-train on", all.set.size());

  // Validation sequences first (for the MLM loss against the unigram baseline), then the
  // pre-training sample of --sequences from the rest.
  Rng rng(mix_key(c.at("seed").get<uint64_t>(), 0x5A3));
  const auto order = shuffled_order(all.set.size(), rng);
  int64_t n_valid = c.at("valid_sequences");
  if (n_valid < 0) n_valid = std::min<int64_t>(500, all.set.size() / 20);
  const int64_t available = all.set.size() - n_valid;
  int64_t n_train = c.at("sequences");
  if (n_train == 0) n_train = available;
  TLM_CHECK(n_train <= available,
            "--sequences {} asks for more than the {} sequences the corpus gives ({} held out "
            "for validation)",
            n_train, available, n_valid);
  TrainJob job;
  for (int64_t i = 0; i < n_valid; ++i) job.test.add(all.set.sequence(order[i]));
  for (int64_t i = n_valid; i < n_valid + n_train; ++i) job.train.add(all.set.sequence(order[i]));
  job.model = model_config(c, vocab);
  job.vocab = &vocab;
  job.options = train_options(c);
  job.options.masking.mask_prob = c.at("mask_prob");
  job.out_dir = out;
  job.resume = !c.at("resume").get<std::string>().empty();
  job.run_config = semantic_part(c);
  job.command_line = r.command_line();
  for (const auto& p : corpora) job.data_hashes[p] = fmt::format("{:016x}", hash_file(p));
  keep_vocab(out, vocab);
  fmt::print(stderr, "pretrain: {} sequences ({} tokens), {} for validation; model {} x {}\n", job.train.size(),
             job.train.num_tokens(), job.test.size(), job.model.num_hidden_layers, job.model.hidden_size);
  const TrainResult res = train_model(job);
  if (res.interrupted) return 130;
  const json& m = res.metrics;
  if (m.contains("final") && m["final"].contains("valid_mlm_loss")) {
    fmt::print("pretrain: {} steps, validation MLM loss {:.4f} (unigram baseline {:.4f}) -> {}\n", res.steps,
               m["final"]["valid_mlm_loss"].get<double>(), m["final"]["unigram_loss"].get<double>(), out);
  } else {
    fmt::print("pretrain: {} steps, final loss {:.4f} -> {}\n", res.steps, res.final_loss, out);
  }
  return 0;
}

int run_finetune(const RunConfigOptions& r) {
  const auto resolved = resolved_config(r);
  if (!resolved) return 0;
  json c = *resolved;
  const std::string out = required(c, "out");
  const std::string init = c.at("init");
  const bool scratch = c.at("scratch");
  TLM_CHECK(init.empty() != !scratch, "give exactly one of --init DIR (a pre-trained run) or --scratch");
  std::string vocab_path = c.at("vocab");
  if (vocab_path.empty() && !init.empty()) vocab_path = (fs::path(init) / "vocab.txt").string();
  TLM_CHECK(!vocab_path.empty(), "--vocab is required with --scratch");
  const Vocab vocab = Vocab::load(vocab_path);
  ReaderOptions ro;
  ro.format = parse_format(c.at("format"));
  ro.classes_path = c.at("classes");
  ro.text_field = c.at("text_field");
  ro.on_bad_row = on_bad_row(c);
  TokenizerOptions to{.lowercase = !c.at("cased").get<bool>()};
  if (ro.format == Format::kFewRel) to.added_tokens = fewrel_markers();
  const Tokenizer tok(vocab, to);
  const std::string train_path = required(c, "train"), test_path = c.at("test");
  const int max_len = c.at("max_len");
  const CorpusSequences train_all = labeled_sequences(train_path, tok, ro, max_len, cache_dir(c));
  report_skips(train_all.stats, train_path);
  // The training sample (and its validation split) and the test sample have seeds of their own,
  // so runs that differ only in their training seed can share data (committee members, paired arms).
  const uint64_t seed =
      c.at("sample_seed").get<uint64_t>() > 0 ? c.at("sample_seed").get<uint64_t>() : c.at("seed").get<uint64_t>();
  const uint64_t test_seed = c.at("test_seed").get<uint64_t>() > 0 ? c.at("test_seed").get<uint64_t>() : seed + 1;
  const bool cap = c.at("cap_per_label");
  const int64_t per_train = c.at("per_label_train"), per_test = c.at("per_label_test");
  TrainJob job;
  auto select = [](const SequenceSet& from, const std::vector<int64_t>& idx) {
    SequenceSet s;
    s.label_names = from.label_names;
    for (int64_t i : idx) s.add(from.sequence(i), from.labels[i]);
    return s;
  };
  auto all_of = [](const SequenceSet& s) {
    std::vector<int64_t> idx(s.size());
    for (int64_t i = 0; i < s.size(); ++i) idx[i] = i;
    return idx;
  };
  std::vector<std::string> capped;
  if (test_path.empty()) {
    TLM_CHECK(per_test > 0, "without --test, --per-label-test must say how many examples per label to hold out");
    const Split split =
        split_per_label(train_all.set.labels, train_all.set.label_names,
                        per_train > 0 ? per_train : train_all.set.size(), per_test, seed, cap || per_train == 0);
    job.train = select(train_all.set, split.train.indices);
    job.test = select(train_all.set, split.test.indices);
    if (per_train > 0) capped = split.train.capped;  // 0 asks for "all the rest": nothing to report
    capped.insert(capped.end(), split.test.capped.begin(), split.test.capped.end());
  } else {
    const CorpusSequences test_all = labeled_sequences(test_path, tok, ro, max_len, cache_dir(c));
    report_skips(test_all.stats, test_path);
    TLM_CHECK(test_all.set.label_names == train_all.set.label_names, "{} and {} have different label sets", train_path,
              test_path);
    const Sample tr = per_train > 0
                          ? sample_per_label(train_all.set.labels, train_all.set.label_names, per_train, seed, cap)
                          : Sample{all_of(train_all.set), {}};
    const Sample te = per_test > 0
                          ? sample_per_label(test_all.set.labels, test_all.set.label_names, per_test, test_seed, cap)
                          : Sample{all_of(test_all.set), {}};
    job.train = select(train_all.set, tr.indices);
    job.test = select(test_all.set, te.indices);
    capped = tr.capped;
    capped.insert(capped.end(), te.capped.begin(), te.capped.end());
  }
  const int64_t per_valid = c.at("valid_per_label");
  if (per_valid > 0) {  // a validation split carved out of the training sample, per label
    const Split split = split_per_label(job.train.labels, job.train.label_names, job.train.size(), per_valid,
                                        mix_key(seed, 0x7A1), true);
    for (const auto& note : split.test.capped) capped.push_back("validation " + note);
    SequenceSet rest = select(job.train, split.train.indices);
    job.valid = select(job.train, split.test.indices);
    job.train = std::move(rest);
  }
  for (const auto& cap_note : capped) fmt::print(stderr, "capped: {}\n", cap_note);
  TLM_CHECK(job.train.size() > 0, "the training set is empty after sampling");
  BertConfig model = init.empty() ? model_config(c, vocab) : load_config(init);
  model.head = Head::kClassification;
  model.labels = job.train.label_names;
  model.hidden_dropout_prob = model.attention_probs_dropout_prob = c.at("dropout");
  model.max_position_embeddings = std::max(model.max_position_embeddings, max_len);
  TLM_CHECK(model.vocab_size == vocab.size(), "the vocabulary ({} tokens) does not match the model ({} tokens)",
            vocab.size(), model.vocab_size);
  job.model = model;
  job.vocab = &vocab;
  job.init_dir = init;
  job.options = train_options(c);
  job.out_dir = out;
  job.resume = !c.at("resume").get<std::string>().empty();
  c["capped"] = capped;
  job.run_config = semantic_part(c);
  job.command_line = r.command_line();
  job.data_hashes[train_path] = fmt::format("{:016x}", hash_file(train_path));
  if (!test_path.empty()) job.data_hashes[test_path] = fmt::format("{:016x}", hash_file(test_path));
  keep_vocab(out, vocab);
  fmt::print(stderr, "finetune: {} train, {} validation, {} test examples, {} labels, {}\n", job.train.size(),
             job.valid.size(), job.test.size(), model.num_labels(), init.empty() ? "from scratch" : "from " + init);
  const TrainResult res = train_model(job);
  if (res.interrupted) return 130;
  const json& m = res.metrics;
  fmt::print("finetune: {} steps; test accuracy {:.4f}, macro-F1 {:.4f}", res.steps,
             m["test"]["accuracy"].get<double>(), m["test"]["macro_f1"].get<double>());
  if (m.contains("best")) {
    fmt::print(" (best epoch by {}: {}, test accuracy {:.4f})", m["best"]["chosen_by"].get<std::string>(),
               m["best"]["epoch"].get<int>(), m["best"].value("test_accuracy", 0.0));
  }
  fmt::print(" -> {}\n", out);
  return 0;
}

}  // namespace

void add_train_commands(CLI::App& app, int argc, char** argv, int* exit_code) {
  auto* pre = app.add_subcommand("pretrain", "pre-train a tiny BERT with masked-language modelling");
  auto pr = std::make_shared<RunConfigOptions>(pre);
  pr->add("corpus", K::kStrings, json::array(), "corpus file(s), plain or gzip (repeatable)");
  pr->add("format", K::kString, "text", "corpus format: text, paragraphs, jsonl, wikiextractor");
  pr->add("text-field", K::kString, "text", "JSON Lines text field");
  pr->add("vocab", K::kString, nullptr, "vocab.txt");
  pr->add("sequences", K::kInt, 0, "pre-training size in sequences (0: all)");
  pr->add("valid-sequences", K::kInt, -1, "held-out sequences for the validation MLM loss (-1: 5%, at most 500)");
  pr->add("seq-mode", K::kString, "first", "first (the paper: first max_len tokens per document) or chunk");
  pr->add("mask-prob", K::kFloat, 0.15, "share of tokens masked");
  add_model_options(*pr);
  add_train_options(*pr, 5e-5, 1);
  pr->set_command_line(argc, argv);
  pre->callback([pr, exit_code] { *exit_code = run_pretrain(*pr); });

  auto* fine = app.add_subcommand("finetune", "fine-tune for classification, from a pre-trained run or from scratch");
  auto fr = std::make_shared<RunConfigOptions>(fine);
  fr->add("train", K::kString, nullptr, "training file");
  fr->add("test", K::kString, "", "test file (default: a per-label split of --train)");
  fr->add("format", K::kString, nullptr, "agnews, dbpedia, fewrel or csv");
  fr->add("classes", K::kString, "", "class names, one per line (csv; optional for agnews/dbpedia)");
  fr->add("text-field", K::kString, "text", "unused for CSV formats");
  fr->add("per-label-train", K::kInt, 0, "training examples per label (0: all)");
  fr->add("per-label-test", K::kInt, 0, "test examples per label (0: all)");
  fr->add("cap-per-label", K::kFlag, false, "take what a short label has instead of failing (reported)");
  fr->add("valid-per-label", K::kInt, 0,
          "hold out this many training examples per label as validation; the best epoch is chosen on them");
  fr->add("sample-seed", K::kInt, 0, "seed of the training sample and validation split (0: --seed)");
  fr->add("test-seed", K::kInt, 0, "seed of the test sample with --test and --per-label-test (0: sample seed + 1)");
  fr->add("init", K::kString, "", "pre-trained run folder (its encoder is loaded, its vocab.txt used)");
  fr->add("scratch", K::kFlag, false, "train the same architecture from random initialisation");
  fr->add("vocab", K::kString, "", "vocab.txt (default: the --init run's)");
  add_model_options(*fr);
  add_train_options(*fr, 5e-5, 3);
  fr->set_command_line(argc, argv);
  fine->callback([fr, exit_code] { *exit_code = run_finetune(*fr); });
}

}  // namespace tlm::cli
