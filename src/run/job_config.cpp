#include "tlm/job_config.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/config.h"
#include "tlm/device.h"
#include "tlm/toml_json.h"

namespace tlm {

using nlohmann::json;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Field int_field(std::string key, int64_t def, double min, double max, std::string help) {
  Field f{std::move(key), FieldType::kInt, def, std::move(help)};
  f.min = min;
  f.max = max;
  return f;
}
Field float_field(std::string key, double def, double min, double max, std::string help, bool min_open = false,
                  bool max_open = false) {
  Field f{std::move(key), FieldType::kFloat, def, std::move(help)};
  f.min = min;
  f.max = max;
  f.min_open = min_open;
  f.max_open = max_open;
  return f;
}
Field string_field(std::string key, json def, std::string help, std::vector<std::string> choices = {}) {
  Field f{std::move(key), FieldType::kString, std::move(def), std::move(help)};
  f.choices = std::move(choices);
  return f;
}
Field strings_field(std::string key, std::string help) {
  return Field{std::move(key), FieldType::kStrings, json::array(), std::move(help)};
}
Field bool_field(std::string key, std::string help) {
  return Field{std::move(key), FieldType::kBool, false, std::move(help)};
}
Field required(Field f) {
  f.required = true;
  return f;
}
Field never(Field f) {
  f.identity = Identity::kNever;
  return f;
}
// A key added after runs were named: in a run's name only when set away from its default.
Field when_set(Field f) {
  f.identity = Identity::kWhenSet;
  return f;
}

const std::vector<std::string> kCorpusFormats = {"text", "paragraphs", "jsonl", "wikiextractor"};
const std::vector<std::string> kLabeledFormats = {"agnews", "dbpedia", "fewrel", "csv"};
const std::vector<std::string> kOnBadRow = {"stop", "skip"};

void add(std::vector<Field>& to, std::vector<Field> more) {
  for (auto& f : more) to.push_back(std::move(f));
}

// The paper's convolutional front-end (block 0, before the transformer layers). In a run's
// name only when set: the names of runs without one stay as they were.
std::vector<Field> conv_fields() {
  Field layers = int_field("conv_layers", 0, 0, 8,
                           "convolutional front-end stages before the transformer layers, as the paper's "
                           "convolutional BERT-1 (0: none)");
  const ConvConfig none;  // the defaults, a plain BERT's, come from the model's own
  Field kernel = string_field("conv_kernel", conv_kernel_text(none.kernel_seq, none.kernel_hidden),
                              "front-end kernel: k or seq,hidden (e.g. 16,3)");
  kernel.check_string = [](const std::string& s) { parse_conv_kernel(s); };
  kernel.canonical = [](const std::string& s) {  // "3,3" is "3"
    const auto [seq, hidden] = parse_conv_kernel(s);
    return conv_kernel_text(seq, hidden);
  };
  Field channels = int_field("conv_channels", none.channels, 1, 1024, "front-end channels");
  Field pad_to = int_field("pad_to", none.pad_to, 0, 8192,
                           "the paper's padded batches for the front-end: every sequence padded with [PAD] to this "
                           "length (at least --max-len), so the convolution and BatchNorm see the [PAD] rows as in "
                           "their code (0: packed, no [PAD] rows)");
  for (Field* f : {&layers, &kernel, &channels, &pad_to}) f->identity = Identity::kWhenSet;
  return {layers, kernel, channels, pad_to};
}

std::vector<Field> model_fields() {
  std::vector<Field> f = {int_field("layers", 2, 1, 48, "encoder layers"),
                          int_field("hidden", 128, 1, 16384, "hidden size"),
                          int_field("heads", 2, 1, 256, "attention heads (hidden must be a multiple)"),
                          int_field("ffn", 0, 0, 65536, "FFN size (0: 4 x hidden)"),
                          float_field("dropout", 0.1, 0, 1, "hidden and attention dropout", false, true)};
  add(f, conv_fields());
  return f;
}

// Where a job computes and in what precision. Threads and device are not part of a run's
// identity (the manifest records them); the precision a job resolves to is, when it is not fp32
// (so the names of fp32 runs made before precisions existed stay), and `auto` is resolved
// before the identity is taken (resolve_precision_key), so machines that resolve it differently
// never share a run. Training defaults to auto (bf16 where the CPU computes it natively: 1.4-1.9x
// faster, bench/README.md), inference to fp32.
std::vector<Field> threads_field(const char* default_precision) {
  Field device = never(string_field("device", "cpu", "device to compute on: cpu, cuda or cuda:N"));
  device.check_string = [](const std::string& s) { parse_device(s); };
  Field precision = string_field("precision", default_precision,
                                 "compute precision: fp32, bf16 (bf16 GEMM operands, fp32 sums and weights) or "
                                 "auto (bf16 where the device computes it natively, else fp32)",
                                 {"fp32", "bf16", "auto"});
  precision.identity = Identity::kWhenSet;
  precision.unnamed = "fp32";
  return {never(int_field("threads", 0, 0, 256, "threads (0: all cores)")), std::move(device), std::move(precision)};
}

// In a run's name only when set (runs named before the key existed keep their names).
Field schedule_field() {
  return when_set(string_field("schedule", "per-step",
                               "per-step (Hugging Face's linear warmup and decay, stepped every optimizer step) or "
                               "per-epoch (the paper's code: the same schedule stepped once per epoch)",
                               {"per-step", "per-epoch"}));
}

std::vector<Field> train_fields(double lr, int epochs) {
  std::vector<Field> f = {
      int_field("max_len", 128, 3, 8192, "tokens per sequence, [CLS] and [SEP] included"),
      int_field("epochs", epochs, 1, 1e6, "passes over the training set"),
      int_field("batch", 32, 1, 1 << 20, "sequences per step"),
      float_field("lr", lr, 0, kInf, "peak learning rate (AdamW)"),
      float_field("weight_decay", 0.01, 0, kInf, "AdamW weight decay (all parameters, as the paper)"),
      float_field("warmup", 0.0, 0, kInf,
                  "warmup: share of the steps if < 1, else steps (per-epoch schedule: of the epochs, rounded down, "
                  "else epochs; at most epochs - 1)"),
      schedule_field(),
      float_field("clip", 1.0, 0, kInf, "global gradient-norm clipping (0: off)"),
      int_field("max_steps", 0, 0, 9e18, "stop after this many steps (0: all epochs)"),
      int_field("seed", 1, 0, 9e18, "seed of init, data order, masks and dropout"),
      never(int_field("checkpoint_every", 0, 0, 9e18, "steps between checkpoints (0: only at the end)")),
      never(int_field("keep_checkpoints", 2, 1, 1e6, "checkpoints kept")),
      never(int_field("log_every", 10, 1, 9e18, "steps between log lines")),
      never(bool_field("overlap_grads",
                       "under mpirun: sum the gradients over the ranks bucket by bucket (--bucket-mb) while backward "
                       "computes the layers below, on a thread of its own (pays where a rank has a core to spare and "
                       "the network is slow)")),
      never(string_field("prefetch", "auto",
                         "build the next step's batch on a thread while a step computes: auto (on a GPU), on or off",
                         {"auto", "on", "off"})),
      never(float_field("bucket_mb", 25, 1e-3, 1e6,
                        "with --overlap-grads: megabytes of gradients a bucket holds at least (it ends at a layer)")),
      string_field("on_bad_row", "stop", "stop or skip (skipped rows are counted)", kOnBadRow),
      never(string_field("cache_dir", "", "token-shard cache (default: <out>/cache)")),
      bool_field("cased", "keep case and accents"),
      never(string_field("out", "", "run folder")),
      never(string_field("resume", "", "run folder to continue from its last checkpoint (the run's --out)")),
      never(
          bool_field("auto_resume", "continue the run in --out from its last checkpoint if it has one, else start it")),
  };
  add(f, threads_field("auto"));
  return f;
}

// The models of an eval or latency job and the labeled data they are run on.
std::vector<Field> labeled_data_fields(const std::string& data_help) {
  return {required(strings_field("model", "fine-tuned run folder (repeat for a committee)")),
          required(string_field("data", nullptr, data_help)),
          required(string_field("format", nullptr, "labeled data format", kLabeledFormats)),
          string_field("classes", "", "class names (csv)")};
}

std::vector<Field> inference_fields() {
  std::vector<Field> f = {
      int_field("max_len", 0, 0, 8192, "tokens per sequence (0: the run's; another value must equal it)"),
      int_field("batch", 64, 1, 1 << 20, "sequences per forward pass"),
      never(bool_field("allow_nonfinite", "load weights holding NaN or infinity")),
  };
  add(f, threads_field("fp32"));
  return f;
}

std::string label(const std::string& key) { return flag_of(key); }

void conv_needs_layers(const json& c, const std::string& where) {
  if (c.at("conv_layers").get<int>() == 0 &&
      (c.at("conv_kernel") != conv_kernel_text(ConvConfig{}.kernel_seq, ConvConfig{}.kernel_hidden) ||
       c.at("conv_channels") != ConvConfig{}.channels || c.at("pad_to") != ConvConfig{}.pad_to)) {
    throw Error(
        fmt::format("{}: --conv-kernel, --conv-channels and --pad-to shape the convolutional front-end; give "
                    "--conv-layers N (1 or more) too",
                    where));
  }
  const int pad_to = c.at("pad_to"), max_len = c.at("max_len");
  if (pad_to > 0 && pad_to < max_len) {
    throw Error(fmt::format("{}: --pad-to {} is shorter than --max-len {}: sequences must fit the padded length", where,
                            pad_to, max_len));
  }
}

void hidden_divides_heads(const json& c, const std::string& where) {
  const int64_t hidden = c.at("hidden"), heads = c.at("heads");
  if (hidden % heads != 0) {
    throw Error(fmt::format("{}: --hidden {} is not a multiple of --heads {}", where, hidden, heads));
  }
}

void out_or_resume(const json& c, const std::string& where) {
  if (c.at("out").get<std::string>().empty() && c.at("resume").get<std::string>().empty()) {
    throw Error(fmt::format("{}: --out is required (or --resume DIR)", where));
  }
}

// The labeled data of a fine-tuning run and how its samples are drawn (run_data.h): shared by
// finetune and fasttext, so a fastText baseline draws exactly the examples a tiny model does.
std::vector<Field> labeled_sample_fields(const std::string& valid_help) {
  return {
      required(string_field("train", nullptr, "training file")),
      string_field("test", "", "test file (default: a per-label split of --train)"),
      required(string_field("format", nullptr, "labeled data format", kLabeledFormats)),
      string_field("classes", "", "class names, one per line (csv; optional for agnews/dbpedia)"),
      string_field("text_field", "text", "unused for CSV formats"),
      int_field("per_label_train", 0, 0, 9e18, "training examples per label (0: all)"),
      int_field("per_label_test", 0, 0, 9e18, "test examples per label (0: all)"),
      bool_field("cap_per_label", "take what a short label has instead of failing (reported)"),
      int_field("valid_per_label", 0, 0, 9e18, valid_help),
      int_field("sample_seed", 0, 0, 9e18, "seed of the training sample and validation split (0: --seed)"),
      int_field("test_seed", 0, 0, 9e18,
                "seed of the test sample with --test and --per-label-test (0: sample seed + 1)"),
  };
}

void test_file_or_per_label(const json& c, const std::string& where) {
  if (c.at("test").get<std::string>().empty() && c.at("per_label_test").get<int64_t>() == 0) {
    throw Error(
        fmt::format("{}: without --test, --per-label-test must say how many examples per label to hold out", where));
  }
}

Field list_field(std::string key, FieldType type, json def, double min, double max, std::string help) {
  Field f{std::move(key), type, std::move(def), std::move(help)};
  f.min = min;
  f.max = max;
  return f;
}

std::map<std::string, JobSchema> make_schemas() {
  std::map<std::string, JobSchema> m;
  auto put = [&](JobSchema s) { m.emplace(s.kind(), std::move(s)); };

  std::vector<Field> pre = {
      required(strings_field("corpus", "corpus file(s), plain or gzip (repeatable)")),
      string_field("format", "text", "corpus format", kCorpusFormats),
      string_field("text_field", "text", "JSON Lines text field"),
      required(string_field("vocab", nullptr, "vocab.txt")),
      int_field("sequences", 0, 0, 9e18, "pre-training size in sequences (0: all)"),
      int_field("valid_sequences", -1, -1, 9e18,
                "held-out sequences for the validation MLM loss (-1: 5%, at most 500)"),
      string_field("seq_mode", "first", "first (the paper: first max_len tokens per document) or chunk",
                   {"first", "chunk"}),
      float_field("mask_prob", 0.15, 0, 1, "share of tokens masked", true, true),
  };
  add(pre, model_fields());
  add(pre, train_fields(5e-5, 1));
  put(JobSchema("pretrain", {"pretrain"}, "pre-train a tiny BERT with masked-language modelling", std::move(pre),
                [](const json& c, const std::string& where) {
                  hidden_divides_heads(c, where);
                  conv_needs_layers(c, where);
                  out_or_resume(c, where);
                }));

  std::vector<Field> fine = labeled_sample_fields(
      "hold out this many training examples per label as validation; the best epoch is chosen on them");
  add(fine,
      {
          string_field("init", "", "pre-trained run folder (its encoder is loaded, its vocab.txt and tokenizer used)"),
          bool_field("scratch", "train the same architecture from random initialisation"),
          string_field("vocab", "", "vocab.txt (default: the --init run's; with --init it must be that vocabulary)"),
          never(bool_field("allow_nonfinite", "load an --init model holding NaN or infinity")),
          when_set(string_field("test_every", "epoch",
                                "score the test set after every epoch (epoch), or once, on the final weights (end: "
                                "the per-epoch log then has validation accuracy only; needs --valid-per-label)",
                                {"epoch", "end"})),
      });
  add(fine, model_fields());
  add(fine, train_fields(5e-5, 3));
  put(JobSchema("finetune", {"finetune"}, "fine-tune for classification, from a pre-trained run or from scratch",
                std::move(fine), [](const json& c, const std::string& where) {
                  const bool init = !c.at("init").get<std::string>().empty(), scratch = c.at("scratch");
                  if (init == scratch) {
                    throw Error(
                        fmt::format("{}: give exactly one of --init DIR (a pre-trained run) or --scratch", where));
                  }
                  if (scratch && c.at("vocab").get<std::string>().empty()) {
                    throw Error(fmt::format("{}: --vocab is required with --scratch", where));
                  }
                  test_file_or_per_label(c, where);
                  if (c.at("test_every") == "end" && c.at("valid_per_label").get<int64_t>() == 0) {
                    throw Error(fmt::format(
                        "{}: --test-every end leaves the epochs without an accuracy to follow or choose the best "
                        "epoch by: give --valid-per-label N too",
                        where));
                  }
                  hidden_divides_heads(c, where);
                  if (scratch) conv_needs_layers(c, where);  // with --init the front-end is the run's (checked there)
                  out_or_resume(c, where);
                }));

  // fastText (Debian's `fasttext`, run as a program) on a fine-tuning run's very samples, its
  // settings chosen from the grid on the validation split.
  std::vector<Field> ft = labeled_sample_fields(
      "hold out this many training examples per label as validation; the grid's setting is chosen on them");
  add(ft, {
              int_field("seed", 1, 0, 2147483647, "fastText's seed (-seed; one thread, so a run repeats exactly)"),
              string_field("vocab", "",
                           "vocab.txt of the tiny models this baseline is compared with: test items are named by "
                           "their token ids as those runs name them, so predictions pair item by item (default: "
                           "by their words)"),
              int_field("max_len", 128, 3, 8192, "with --vocab: the tiny models' tokens per sequence"),
              bool_field("cased", "keep case and accents (fastText's words are BERT's pre-tokenized words)"),
              string_field("on_bad_row", "stop", "stop or skip (skipped rows are counted)", kOnBadRow),
              list_field("lrs", FieldType::kFloats, json::array({0.1, 0.25, 0.5, 1.0}), 1e-6, 100,
                         "learning rates to try (-lr)"),
              list_field("epochs", FieldType::kInts, json::array({25, 50, 100, 200}), 1, 1e6,
                         "epochs to try (-epoch; a few hundred examples need many)"),
              list_field("word_ngrams", FieldType::kInts, json::array({1, 2}), 1, 5,
                         "word n-gram lengths to try (-wordNgrams)"),
              int_field("dim", 100, 1, 4096, "word vector size (-dim)"),
              int_field("bucket", 200000, 1, 1e8,
                        "hash buckets of word n-grams (-bucket; fastText's 2M makes 800 MB models of a few hundred "
                        "examples)"),
              int_field("min_count", 1, 1, 1e9, "least count of a word (-minCount)"),
              never(string_field("fasttext", "fasttext", "the fastText program (Debian package fasttext)")),
              never(required(string_field("out", nullptr, "run folder"))),
          });
  put(JobSchema("fasttext", {"fasttext"},
                "a tuned fastText classifier on a fine-tuning run's samples (the practitioner's baseline)",
                std::move(ft), [](const json& c, const std::string& where) {
                  test_file_or_per_label(c, where);
                  for (const char* key : {"lrs", "epochs", "word_ngrams"}) {
                    const json& list = c.at(key);
                    for (size_t i = 0; i < list.size(); ++i) {
                      for (size_t j = 0; j < i; ++j) {
                        if (list[i] == list[j]) {
                          throw Error(fmt::format("{}: {} lists {} twice", where, flag_of(key), list[i].dump()));
                        }
                      }
                    }
                  }
                  // fastText holds (words + bucket) x dim floats per model.
                  if (c.at("bucket").get<double>() * c.at("dim").get<double>() > (1ull << 31)) {
                    throw Error(fmt::format("{}: --bucket {} x --dim {} floats is over 8 GiB per model", where,
                                            c.at("bucket").get<int64_t>(), c.at("dim").get<int64_t>()));
                  }
                  const size_t grid = c.at("lrs").size() * c.at("epochs").size() * c.at("word_ngrams").size();
                  if (grid > 1 && c.at("valid_per_label").get<int64_t>() == 0) {
                    throw Error(fmt::format("{}: --valid-per-label must be > 0 to choose among the grid's {} settings",
                                            where, grid));
                  }
                }));

  std::vector<Field> ev = labeled_data_fields("labeled data file");
  add(ev, {
              int_field("per_label", 0, 0, 9e18, "evaluate on this many examples per label (0: all)"),
              bool_field("cap_per_label", "take what a short label has instead of failing"),
              int_field("subsets", 20, 1, 1e6, "random member subsets per committee size"),
              int_field("seed", 1, 0, 9e18, "seed of the per-label sample and of the subsets"),
              never(string_field("out", "", "also write the JSON here")),
              never(string_field("predictions", "",
                                 "also write each item's probabilities (committee and members) here (safetensors)")),
          });
  add(ev, inference_fields());
  put(JobSchema("eval", {"eval"}, "evaluate a classifier, or a soft committee of several, on labeled data",
                std::move(ev)));

  std::vector<Field> pr = {
      required(strings_field("model", "fine-tuned run folder (repeat for a committee)")),
      string_field("input", "", "text file, one text per line (default: stdin)"),
      bool_field("probs", "print the probabilities too"),
  };
  add(pr, inference_fields());
  put(JobSchema("predict", {"predict"}, "label texts (stdin or --input, one per line) with a model or committee",
                std::move(pr)));

  std::vector<Field> lat = labeled_data_fields("labeled data file (its first --texts examples are timed)");
  add(lat,
      {
          int_field("texts", 200, 1, 1e9, "texts timed one at a time"),
          string_field("reference", "",
                       "a run to compare with (e.g. a deep model): it, the first model alone and the committee are "
                       "timed in interleaved rounds, and their latency ratios get 95% intervals"),
          int_field("rounds", 10, 2, 1000, "interleaved rounds with --reference"),
          string_field("mode", "both", "committee members: sequential, concurrent or both",
                       {"sequential", "concurrent", "both"}),
          never(string_field("json", "", "also write the result as JSON here")),
      });
  add(lat, inference_fields());
  put(JobSchema("latency", {"bench", "latency"}, "inference latency of a classifier or a soft committee",
                std::move(lat)));

  put(JobSchema("overlap", {"overlap"}, "how much of a dataset's tokens and words a corpus covers",
                {required(strings_field("corpus", "corpus file(s)")),
                 string_field("corpus_format", "text", "corpus format", kCorpusFormats),
                 string_field("text_field", "text", "JSON Lines text field of the corpus"),
                 required(string_field("data", nullptr, "labeled data file")),
                 required(string_field("format", nullptr, "labeled data format", kLabeledFormats)),
                 string_field("classes", "", "class names (csv)"), string_field("vocab", "", "vocab.txt (or --model)"),
                 string_field("model", "", "a run folder whose vocabulary and tokenizer settings to use (or --vocab)"),
                 bool_field("cased", "keep case and accents (with --vocab; a --model run's own setting must match)"),
                 string_field("on_bad_row", "stop", "stop or skip (skipped rows are counted)", kOnBadRow),
                 never(string_field("out", "", "also write the JSON here"))},
                [](const json& c, const std::string& where) {
                  if (c.at("vocab").get<std::string>().empty() == c.at("model").get<std::string>().empty()) {
                    throw Error(fmt::format("{}: give exactly one of --vocab FILE or --model RUN", where));
                  }
                }));

  put(JobSchema("vocab", {"vocab", "train"}, "learn a WordPiece vocabulary (bert-base id layout) from a corpus",
                {required(strings_field("corpus", "corpus file(s), plain or gzip")),
                 string_field("format", "text", "corpus format", kCorpusFormats),
                 string_field("text_field", "text", "JSON Lines text field"),
                 int_field("size", 8192, 110, 1 << 24, "vocabulary size, specials included"),
                 int_field("min_frequency", 2, 1, 9e18, "least count of a merged pair"),
                 int_field("limit_alphabet", 1000, 1, 1 << 24, "most frequent characters kept"),
                 int_field("max_words", 4000000, 1000, 9e18, "distinct words held in memory"),
                 bool_field("cased", "keep case and accents"),
                 string_field("on_bad_row", "stop", "stop or skip (skipped rows are counted)", kOnBadRow),
                 never(required(string_field("out", nullptr, "vocab.txt to write")))}));

  put(JobSchema("data", {"data", "embedded"}, "build the embedded default corpora and tasks from Debian packages",
                {never(required(string_field("out", nullptr, "output folder"))),
                 int_field("seed", 1, 0, 9e18, "seed of the train/test splits and shuffles"),
                 float_field("test_share", 0.2, 0.01, 0.9, "share of each label held out as test"),
                 int_field("min_per_label", 100, 1, 1e9, "smaller fortune categories are left out")}));
  return m;
}

const std::map<std::string, JobSchema>& schemas() {
  static const std::map<std::string, JobSchema> s = make_schemas();
  return s;
}

std::string type_name(FieldType t) {
  switch (t) {
    case FieldType::kInt:
      return "an integer";
    case FieldType::kFloat:
      return "a number";
    case FieldType::kString:
      return "a string";
    case FieldType::kStrings:
      return "a list of strings";
    case FieldType::kBool:
      return "true or false";
    case FieldType::kInts:
      return "a list of integers";
    case FieldType::kFloats:
      return "a list of numbers";
  }
  return "?";
}

std::string range_text(const Field& f) {
  const std::string lo = std::isinf(f.min) ? "" : fmt::format("{} {}", f.min_open ? ">" : ">=", f.min);
  const std::string hi = std::isinf(f.max) ? "" : fmt::format("{} {}", f.max_open ? "<" : "<=", f.max);
  return lo.empty() ? hi : hi.empty() ? lo : lo + " and " + hi;
}

}  // namespace

std::string flag_of(const std::string& key) {
  std::string flag = "--" + key;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string nearest_name(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;  // close enough to be a typo
  for (const auto& k : known) {
    // Levenshtein distance, one row at a time.
    std::vector<size_t> row(k.size() + 1);
    for (size_t j = 0; j <= k.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= key.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= k.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (key[i - 1] == k[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    if (row[k.size()] < best_d) {
      best_d = row[k.size()];
      best = k;
    }
  }
  return best;
}

JobSchema::JobSchema(std::string kind, std::vector<std::string> command, std::string summary, std::vector<Field> fields,
                     std::function<void(const json&, const std::string&)> relations)
    : kind_(std::move(kind)),
      summary_(std::move(summary)),
      command_(std::move(command)),
      fields_(std::move(fields)),
      relations_(std::move(relations)) {}

const Field* JobSchema::find(const std::string& key) const {
  for (const auto& f : fields_) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

const Field& JobSchema::at(const std::string& key, const std::string& where) const {
  if (const Field* f = find(key)) return *f;
  std::vector<std::string> known;
  for (const auto& f : fields_) known.push_back(f.key);
  const std::string near = nearest_name(key, known);
  throw Error(fmt::format("{}: unknown key \"{}\" for tlm {}{}", where, key, fmt::join(command_, " "),
                          near.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", near)));
}

json JobSchema::check_value(const Field& f, const json& v, const std::string& where) const {
  auto bad = [&](const std::string& what) {
    return Error(fmt::format("{}: {} ({}): {}", where, f.key, label(f.key), what));
  };
  switch (f.type) {
    case FieldType::kInt: {
      if (!v.is_number_integer()) throw bad(fmt::format("expected an integer, got {}", v.dump()));
      const double d = static_cast<double>(v.get<int64_t>());
      if (d < f.min || d > f.max) throw bad(fmt::format("{} is out of range (must be {})", v.dump(), range_text(f)));
      return v;
    }
    case FieldType::kFloat: {
      if (!v.is_number()) throw bad(fmt::format("expected a number, got {}", v.dump()));
      const double d = v.get<double>();
      if (!std::isfinite(d)) throw bad(fmt::format("{} is not a finite number", d));
      if (d < f.min || d > f.max || (f.min_open && d == f.min) || (f.max_open && d == f.max)) {
        throw bad(fmt::format("{} is out of range (must be {})", d, range_text(f)));
      }
      return d;
    }
    case FieldType::kString: {
      if (!v.is_string()) throw bad(fmt::format("expected a string, got {}", v.dump()));
      if (!f.choices.empty() &&
          std::find(f.choices.begin(), f.choices.end(), v.get<std::string>()) == f.choices.end()) {
        throw bad(fmt::format("\"{}\" is not one of {}", v.get<std::string>(), fmt::join(f.choices, ", ")));
      }
      if (f.check_string) {
        try {
          f.check_string(v.get<std::string>());
        } catch (const Error& e) {
          throw bad(e.what());
        }
      }
      return f.canonical ? json(f.canonical(v.get<std::string>())) : v;
    }
    case FieldType::kStrings: {
      const json list = v.is_string() ? json::array({v}) : v;
      if (!list.is_array()) throw bad(fmt::format("expected {}, got {}", type_name(f.type), v.dump()));
      for (const auto& e : list) {
        if (!e.is_string()) throw bad(fmt::format("expected {}, got {}", type_name(f.type), v.dump()));
      }
      return list;
    }
    case FieldType::kBool:
      if (!v.is_boolean()) throw bad(fmt::format("expected true or false, got {}", v.dump()));
      return v;
    case FieldType::kInts:
    case FieldType::kFloats: {
      const json list = v.is_number() ? json::array({v}) : v;
      if (!list.is_array() || list.empty()) throw bad(fmt::format("expected {}, got {}", type_name(f.type), v.dump()));
      Field each = f;
      each.type = f.type == FieldType::kInts ? FieldType::kInt : FieldType::kFloat;
      json out = json::array();
      for (const auto& e : list) out.push_back(check_value(each, e, where));
      return out;
    }
  }
  return v;
}

namespace {

// The whole of `text` read by `parse` (std::stoll, std::stod), or nothing when any of it is left.
template <typename Parse>
std::optional<json> parse_whole(const std::string& text, Parse parse) {
  size_t used = 0;
  try {
    json v = parse(text, &used);
    if (used == text.size() && !text.empty()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

json JobSchema::parse_value(const Field& f, const std::string& text, const std::string& where) const {
  std::optional<json> v;
  switch (f.type) {
    case FieldType::kInt:
      v = parse_whole(text, [](const std::string& t, size_t* used) { return std::stoll(t, used); });
      break;
    case FieldType::kFloat:
      v = parse_whole(text, [](const std::string& t, size_t* used) { return std::stod(t, used); });
      break;
    case FieldType::kBool:
      if (text == "true" || text == "1") v = true;
      if (text == "false" || text == "0") v = false;
      break;
    case FieldType::kString:
    case FieldType::kStrings:
      v = text;
      break;
    case FieldType::kInts:
    case FieldType::kFloats: {
      Field each = f;
      each.type = f.type == FieldType::kInts ? FieldType::kInt : FieldType::kFloat;
      json list = json::array();
      size_t start = 0;
      while (true) {
        const size_t comma = text.find(',', start);
        list.push_back(parse_value(each, text.substr(start, comma - start), where));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      v = list;
      break;
    }
  }
  if (!v)
    throw Error(fmt::format("{}: {} ({}): \"{}\" is not {}", where, f.key, label(f.key), text, type_name(f.type)));
  return check_value(f, *v, where);
}

void JobSchema::check(const json& config, const std::string& where) const {
  if (!config.is_object()) throw Error(fmt::format("{}: expected a table of keys", where));
  for (const auto& [k, v] : config.items()) {
    if (!v.is_null()) check_value(at(k, where), v, where);  // null: not set (required keys are below)
  }
  for (const auto& f : fields_) {
    if (!f.required) continue;
    const json* v = config.contains(f.key) ? &config[f.key] : nullptr;
    if (!v || v->is_null() || (v->is_string() && v->get<std::string>().empty()) || (v->is_array() && v->empty())) {
      throw Error(fmt::format("{}: {} is required", where, label(f.key)));
    }
  }
  if (relations_) {
    json full = defaults();
    for (const auto& [k, v] : config.items()) full[k] = v;
    relations_(full, where);
  }
}

json JobSchema::defaults() const {
  json d = json::object();
  for (const auto& f : fields_) d[f.key] = f.default_value;
  return d;
}

json JobSchema::identity(const json& config) const {
  json id = json::object();
  for (const auto& f : fields_) {
    if (!config.contains(f.key) || f.identity == Identity::kNever) continue;
    const json& v = config[f.key];
    if (f.identity == Identity::kWhenSet && v == (f.unnamed.is_null() ? f.default_value : f.unnamed)) continue;
    id[f.key] = v;
  }
  return id;
}

Precision resolve_precision_key(json& config) {
  std::string note;
  const Precision p = resolve_precision(parse_precision(config.at("precision").get<std::string>()),
                                        parse_device(config.at("device").get<std::string>()), &note);
  if (!note.empty() && Comm::world().leader()) fmt::print(stderr, "{}\n", note);  // once under mpirun
  config["precision"] = precision_name(p);
  return p;
}

const JobSchema& job_schema(const std::string& kind) {
  const auto it = schemas().find(kind);
  if (it == schemas().end()) throw Error(fmt::format("unknown job kind \"{}\"", kind));
  return it->second;
}

std::vector<std::string> job_kinds() {
  std::vector<std::string> k;
  for (const auto& [name, s] : schemas()) k.push_back(name);
  return k;
}

const std::vector<std::string>& architecture_keys() {
  static const std::vector<std::string> keys = {"layers",      "hidden",      "heads",         "ffn",
                                                "conv_layers", "conv_kernel", "conv_channels", "pad_to"};
  return keys;
}

ConfigResolver::ConfigResolver(const JobSchema& schema) : schema_(schema) { r_.config = schema.defaults(); }

void ConfigResolver::apply_json(const json& values, const std::string& where) {
  if (!values.is_object()) throw Error(fmt::format("{}: expected a table of keys", where));
  for (const auto& [k, v] : values.items()) {
    r_.config[k] = schema_.check_value(schema_.at(k, where), v, where);
    r_.given.insert(k);
  }
}

void ConfigResolver::apply_file(const std::string& toml_path) { apply_json(toml_file_to_json(toml_path), toml_path); }

void ConfigResolver::apply_text(const std::string& key, const std::string& text, const std::string& where) {
  r_.config[key] = schema_.parse_value(schema_.at(key, where), text, where);
  r_.given.insert(key);
}

void ConfigResolver::apply_set(const std::string& key_equals_value) {
  const size_t eq = key_equals_value.find('=');
  if (eq == std::string::npos) throw Error(fmt::format("--set {}: expected key=value", key_equals_value));
  apply_text(key_equals_value.substr(0, eq), key_equals_value.substr(eq + 1), "--set");
}

ResolvedConfig ConfigResolver::result() const {
  schema_.check(r_.config, "tlm " + fmt::format("{}", fmt::join(schema_.command(), " ")));
  return r_;
}

std::string config_to_toml(const json& config, const std::string& comment, const JobSchema* schema) {
  std::string out;
  for (size_t start = 0; start < comment.size();) {
    const size_t end = comment.find('\n', start);
    out += "# " + comment.substr(start, end == std::string::npos ? std::string::npos : end - start) + "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  auto value = [](const json& v) -> std::string {
    if (v.is_string()) return v.dump();  // JSON string escapes are valid TOML basic-string escapes
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    if (v.is_number_integer()) return v.dump();
    if (v.is_number_float()) {
      std::string s = fmt::format("{}", v.get<double>());
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // TOML needs a float to look like one
      return s;
    }
    if (v.is_array()) {
      std::vector<std::string> items;
      for (const auto& e : v) items.push_back(e.dump());  // strings and numbers: JSON's form is TOML's
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
    throw Error(fmt::format("cannot write {} as a TOML value", v.dump()));
  };
  for (const auto& [k, v] : config.items()) {
    if (!v.is_null()) out += fmt::format("{} = {}\n", k, value(v));
  }
  if (schema) {
    std::string defaults;
    for (const auto& f : schema->fields()) {
      if (config.contains(f.key) || f.default_value.is_null()) continue;
      defaults += fmt::format("# {} = {}\n", f.key, value(f.default_value));
    }
    if (!defaults.empty()) out += "\n# defaults (not given here)\n" + defaults;
  }
  return out;
}

}  // namespace tlm
