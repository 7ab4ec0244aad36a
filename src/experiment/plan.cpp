#include "experiment/plan.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "experiment/plan_check.h"
#include "experiment/presets.h"
#include "tlm/check.h"
#include "tlm/decontaminate.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"
#include "tlm/job_config.h"
#include "tlm/process.h"
#include "tlm/readers.h"
#include "tlm/run_data.h"
#include "tlm/toml_json.h"

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : embedded_presets()) names.push_back(name);
  return names;
}

json load_plan(const std::string& preset_or_file) {
  for (const auto& [name, text] : embedded_presets()) {
    if (name == preset_or_file) {
      json plan = toml_text_to_json(text, "preset " + name);
      check_plan(plan, "preset " + name);
      return plan;
    }
  }
  if (fs::exists(preset_or_file)) {
    json plan = toml_file_to_json(preset_or_file);
    check_plan(plan, preset_or_file);
    return plan;
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(fmt::format("--preset {}: neither a preset ({}) nor a plan file", preset_or_file, known));
}

namespace {

// Token shards of every run in one folder under <out>: a corpus is tokenized once per vocabulary.
constexpr const char* kSharedCache = "cache";

// A plan section or key, or an error naming it.
const json& need(const json& j, const std::string& key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw Error(fmt::format("plan: [{}] needs the key \"{}\"", where, key));
  return j[key];
}

std::string need_string(const json& j, const std::string& key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_string()) throw Error(fmt::format("plan: [{}] {}: expected a string, got {}", where, key, v.dump()));
  return v;
}

int64_t need_int(const json& j, const std::string& key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_number_integer())
    throw Error(fmt::format("plan: [{}] {}: expected an integer, got {}", where, key, v.dump()));
  return v;
}

std::vector<std::string> need_strings(const json& j, const std::string& key, const std::string& where) {
  const json& v = need(j, key, where);
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) throw Error(fmt::format("plan: [{}] {}: expected a list of names, got {}", where, key, v.dump()));
  for (const auto& e : v) {
    if (!e.is_string()) throw Error(fmt::format("plan: [{}] {}: expected names, got {}", where, key, e.dump()));
    out.push_back(e);
  }
  return out;
}

json merged(json base, const json& over) {
  if (over.is_object()) {
    for (const auto& [k, v] : over.items()) base[k] = v;
  }
  return base;
}

std::string job_id(const std::string& kind, const json& identity) {
  return fmt::format("{}-{:012x}", kind, hash_string(kind + "\n" + identity.dump()) & 0xFFFFFFFFFFFFull);
}

double final_valid_accuracy(const std::string& out, const std::string& run) {
  const std::string path = (fs::path(out) / run / "metrics.json").string();
  const json m = read_json_file(path);
  if (!m.contains("final") || !m["final"].contains("valid_accuracy")) {
    throw Error(
        fmt::format("{}: no validation accuracy (the plan's finetune.valid_per_label must be > 0 to "
                    "choose a learning rate)",
                    path));
  }
  return m["final"]["valid_accuracy"];
}

// Where a task's texts are and how its test sample is drawn, for the work the experiment does
// itself: keeping test texts out of corpora and vocabularies. Paths are relative to <out>.
struct TaskTexts {
  std::string name, train, test;  // no test file: the test sample is drawn from train
  ReaderOptions reader;
  int64_t per_label_test = 0;
  uint64_t test_seed = 0;
  bool cap = false;

  json identity() const {
    return {name,           train,     test, reader.classes_path,
            per_label_test, test_seed, cap,  reader.on_bad_row == OnBadRow::kSkip ? "skip" : "stop"};
  }

  LabeledData read(const std::string& out, const std::string& file) const {
    ReaderOptions r = reader;  // the runner's working directory is not <out>
    if (!r.classes_path.empty()) r.classes_path = (fs::path(out) / reader.classes_path).string();
    return read_labeled((fs::path(out) / file).string(), r);
  }
  // Which examples of the one file form the test sample (run_data's rule, as fine-tuning draws it).
  std::vector<char> test_rows(const LabeledData& d) const {
    const std::vector<int32_t> labels = labels_of(d.examples);
    std::vector<char> in_test(labels.size(), 0);
    for (int64_t i : draw_test_indices(labels, d.label_names, per_label_test, test_seed, cap).indices) in_test[i] = 1;
    return in_test;
  }
  // The texts of the test sample: all of the test file, or the test draw of the one file.
  std::vector<std::string> test_texts(const std::string& out) const {
    const LabeledData d = read(out, test.empty() ? train : test);
    const std::vector<char> in_test = test.empty() ? test_rows(d) : std::vector<char>(d.examples.size(), 1);
    std::vector<std::string> texts;
    for (size_t i = 0; i < d.examples.size(); ++i) {
      if (in_test[i]) texts.push_back(d.examples[i].text);
    }
    return texts;
  }
  // The training texts: the training file, less the test draw when it is the one file.
  std::vector<std::string> train_texts(const std::string& out) const {
    const LabeledData d = read(out, train);
    const std::vector<char> in_test = test.empty() ? test_rows(d) : std::vector<char>(d.examples.size(), 0);
    std::vector<std::string> texts;
    for (size_t i = 0; i < d.examples.size(); ++i) {
      if (!in_test[i]) texts.push_back(d.examples[i].text);
    }
    return texts;
  }
};

class Expander {
 public:
  Expander(const json& plan, const ExpandOptions& opt) : plan_(plan), opt_(opt) {}

  PlanRuns run() {
    check_plan(plan_, "plan " + plan_.value("name", std::string("(unnamed)")));
    seeds_ = static_cast<int>(need_int(plan_, "seeds", "top level"));
    TLM_CHECK(seeds_ >= 1, "plan: seeds must be at least 1");
    first_seed_ = static_cast<int>(plan_.value("first_seed", int64_t{1}));
    per_seed_pretrain_ = plan_.value("pretrain_per_seed", false);
    setup_data();
    setup_vocab();
    const json& ft = need(plan_, "finetune", "top level");
    for (const auto& lr : need(ft, "lrs", "finetune")) lrs_.push_back(lr.get<double>());
    // Every run of a task is scored on one test sample, so differences between runs are paired.
    TLM_CHECK(need_int(ft, "test_seed", "finetune") > 0, "plan: [finetune] test_seed must be > 0");
    TLM_CHECK(!lrs_.empty(), "plan: [finetune] lrs is empty");
    json& roles = out_.roles;
    roles["pretrain"] = json::array();
    if (plan_.contains("e1")) {
      // [e1] crosses its tasks with its architectures; [[e1]] tables give several such crosses.
      const json& e1 = plan_["e1"];
      roles["e1"] = json::array();
      for (const json& part : e1.is_array() ? e1 : json::array({e1})) {
        for (auto& row : expand_e1(part)) roles["e1"].push_back(row);
      }
    }
    if (plan_.contains("e2")) {
      // [e2] is one task's curve; [[e2]] tables give several, each with its own results.
      const json& e2 = plan_["e2"];
      if (e2.is_array()) {
        roles["e2"] = json::array();
        for (const json& part : e2) roles["e2"].push_back(expand_e2(part));
      } else {
        roles["e2"] = expand_e2(e2);
      }
    }
    if (plan_.contains("e3")) roles["e3"] = expand_e3(plan_["e3"]);
    if (plan_.contains("e4")) roles["e4"] = expand_e4(plan_["e4"]);
    for (size_t i = 0; i < out_.graph.jobs().size(); ++i) {
      if (out_.graph.at(static_cast<int>(i)).kind == "pretrain") roles["pretrain"].push_back(i);
    }
    roles["decontamination"] = json::object();
    for (const auto& [name, id] : cleaned_) roles["decontamination"][name] = id;
    roles["seeds"] = seeds_;
    roles["first_seed"] = first_seed_;
    roles["lrs"] = lrs_;
    roles["data_dir"] = data_dir_;
    roles["vocab"] = vocab_path_;
    return std::move(out_);
  }

 private:
  std::string data(const std::string& rel) const { return (fs::path(data_dir_) / rel).lexically_normal().string(); }

  // Names the job from the hash of what defines it; its folder follows from the name.
  static void identify(Job& job, const json& identity) {
    job.id = job_id(job.kind, identity);
    if (job.dir.empty()) job.dir = "runs/" + job.id;
  }
  int add(Job job, const json& identity) {
    identify(job, identity);
    return out_.graph.add(std::move(job));
  }
  // Adds a tlm command job: its configuration is checked by its schema now, before any run
  // starts; its name comes from what identifies its work; `key` names its output (<dir>/<file>,
  // or <dir> itself for a run folder).
  int add_command(Job job, const std::string& key, const std::string& file) {
    const JobSchema& schema = job_schema(job.schema);
    set_precision(job, schema);
    identify(job, schema.identity(resolved(schema, job.config, job.title)));
    job.config[key] = file.empty() ? job.dir : job.dir + "/" + file;
    schema.check(job.config, fmt::format("plan: {}", job.title));
    return out_.graph.add(std::move(job));
  }

  // The experiment's precision, in every command that computes; a section cannot set its own.
  void set_precision(Job& job, const JobSchema& schema) const {
    if (!schema.find("precision")) return;
    if (job.config.contains("precision")) {
      throw Error(
          fmt::format("plan: {}: precision is the whole experiment's (the top-level key precision, or "
                      "reproduce --precision), not a step's",
                      job.title));
    }
    job.config["precision"] = opt_.precision;
  }

  // A job's whole configuration: the schema's defaults under what the plan gives, each value
  // checked. Names hash all of it (defaults included, so a changed default renames the runs it
  // changes); the job file holds what the plan gives (the rest are defaults, and a key a job file
  // names counts as given, e.g. architecture keys against an --init run).
  static json resolved(const JobSchema& schema, const json& given, const std::string& title) {
    ConfigResolver r(schema);
    r.apply_json(given, fmt::format("plan: {}", title));
    return r.partial().config;
  }

  void setup_data() {
    const json d = plan_.value("data", json::object());
    if (!opt_.data_dir.empty()) {
      data_dir_ = opt_.data_dir;
    } else if (d.value("source", "dir") == "embedded") {
      data_dir_ = "data";
      Job j;
      j.kind = j.schema = "data";
      j.title = "embedded Debian data (tlm data embedded)";
      j.dir = "data";
      j.done = "manifest.json";
      j.config = json::object();
      data_job_ = add_command(std::move(j), "out", "");
    } else {
      data_dir_ = fs::absolute(need_string(d, "dir", "data")).lexically_normal().string();
    }
    if (data_job_ < 0)
      TLM_CHECK(fs::is_directory(data_dir_), "data folder {} does not exist (give --data-dir)", data_dir_);
  }

  std::vector<int> data_deps() const { return data_job_ >= 0 ? std::vector<int>{data_job_} : std::vector<int>{}; }

  const json& task(const std::string& name) const {
    const json& tasks = need(plan_, "tasks", "top level");
    return need(tasks, name, "tasks");
  }
  const json& corpus(const std::string& name) const {
    const json& corpora = need(plan_, "corpora", "top level");
    return need(corpora, name, "corpora");
  }
  json arch(const std::string& name) const {
    const json& archs = need(plan_, "architectures", "top level");
    return need(archs, name, "architectures");
  }

  void setup_vocab() {
    const json& v = need(plan_, "vocab", "top level");
    if (v.contains("file")) {
      vocab_path_ = data(need_string(v, "file", "vocab"));
      if (data_job_ < 0) TLM_CHECK(fs::exists(vocab_path_), "plan: [vocab] file {} does not exist", vocab_path_);
      return;
    }
    // A vocabulary trained on the pre-training corpora (without the tasks' test texts) and the
    // tasks' training texts (without their test samples).
    std::vector<std::string> files;
    std::vector<int> deps = data_deps();
    for (const auto& name : need_strings(v, "corpora", "vocab")) {
      const int clean = clean_corpus(name);
      deps.push_back(clean);
      files.push_back(out_.graph.at(clean).dir + "/corpus.txt");
    }
    if (v.value("task_texts", false)) {
      for (const auto& [name, t] : need(plan_, "tasks", "top level").items()) {
        const TaskTexts task = task_texts(name);
        Job j;
        j.kind = "texts";
        j.title = "training texts of " + name;
        j.done = "texts.txt";
        j.deps = data_deps();
        j.internal = [task](const std::string& out, const std::string& dir) {
          std::string text;
          for (const auto& line : task.train_texts(out)) text += line + "\n";
          write_file_atomic((fs::path(dir) / "texts.txt").string(), text);
        };
        const int id = add(std::move(j), task.identity());
        deps.push_back(id);
        files.push_back(out_.graph.at(id).dir + "/texts.txt");
      }
    }
    TLM_CHECK(!files.empty(), "plan: [vocab] needs a file, or corpora and/or task_texts to train one");
    Job j;
    j.kind = j.schema = "vocab";
    j.title = fmt::format("vocabulary of {} tokens", need_int(v, "size", "vocab"));
    j.done = "vocab.txt";
    j.deps = deps;
    j.config = {{"format", "text"}, {"size", need_int(v, "size", "vocab")}, {"corpus", files}};
    vocab_job_ = add_command(std::move(j), "out", "vocab.txt");
    vocab_path_ = out_.graph.at(vocab_job_).dir + "/vocab.txt";
  }

  std::vector<int> vocab_deps() const {
    std::vector<int> d = data_deps();
    if (vocab_job_ >= 0) d.push_back(vocab_job_);
    return d;
  }

  // epochs > 0: this many pre-training epochs instead of [pretrain]'s (more tokens than the corpus
  // holds sequences for).
  int pretrain(const std::string& arch_name, const std::string& corpus_name, int64_t sequences, int seed,
               int64_t epochs = 0) {
    const int clean = clean_corpus(corpus_name);
    json cfg = merged(need(plan_, "pretrain", "top level"), arch(arch_name));
    cfg.erase("corpus");
    cfg["corpus"] = json::array({out_.graph.at(clean).dir + "/corpus.txt"});
    cfg["format"] = "text";  // the cleaned corpus: one document per line
    cfg["vocab"] = vocab_path_;
    cfg["cache_dir"] = kSharedCache;
    cfg["sequences"] = sequences;
    cfg["seed"] = seed;
    json tags = {{"arch", arch_name}, {"corpus", corpus_name}, {"sequences", sequences}, {"seed", seed}};
    std::string size = fmt::format("{} sequences", sequences);
    if (epochs > 0) {
      cfg["epochs"] = epochs;
      tags["epochs"] = epochs;
      size += fmt::format(" x {} epochs", epochs);
    }
    return add_trainer("pretrain", fmt::format("pre-train {} on {} ({}, seed {})", arch_name, corpus_name, size, seed),
                       cfg, with(vocab_deps(), clean), tags);
  }

  static std::vector<int> with(std::vector<int> deps, int more) {
    deps.push_back(more);
    return deps;
  }

  // A task's texts as the plan's fine-tuning draws them.
  TaskTexts task_texts(const std::string& name) const {
    const json ft = finetune_config(name);
    TaskTexts task;
    task.name = name;
    task.train = ft.at("train");
    task.test = ft.value("test", std::string());
    // Read as fine-tuning reads it (skipped bad rows included), so the test draw is the same.
    task.reader = {.format = parse_format(ft.at("format")),
                   .classes_path = ft.value("classes", std::string()),
                   .on_bad_row = parse_on_bad_row(ft.value("on_bad_row", std::string("stop")))};
    task.per_label_test = ft.value("per_label_test", int64_t{0});
    task.test_seed = ft.at("test_seed").get<uint64_t>();
    task.cap = ft.value("cap_per_label", false);
    return task;
  }

  // A corpus with every task's test texts removed (decontaminate.h), made once per corpus and used
  // for everything: vocabulary, pre-training and overlap. Returns its job; the cleaned text is
  // <dir>/corpus.txt, one document per line.
  int clean_corpus(const std::string& corpus_name) {
    if (const auto it = cleaned_.find(corpus_name); it != cleaned_.end()) return it->second;
    const json& c = corpus(corpus_name);
    const std::string file = data(need_string(c, "file", "corpora." + corpus_name));
    // The corpus is read as pre-training would read it: [pretrain]'s on_bad_row says whether a bad
    // document (an empty article) stops the plan or is skipped and counted.
    const std::string on_bad_row = need(plan_, "pretrain", "top level").value("on_bad_row", std::string("stop"));
    const ReaderOptions reader{.format = parse_format(c.value("format", "text")),
                               .text_field = c.value("text_field", std::string("text")),
                               .on_bad_row = parse_on_bad_row(on_bad_row)};
    std::vector<TaskTexts> tasks;
    json identity = {"decontaminate v2", file,      c.value("format", "text"), reader.text_field,
                     kMinWordsInside,    on_bad_row};
    for (const auto& [name, t] : need(plan_, "tasks", "top level").items()) {
      tasks.push_back(task_texts(name));
      identity.push_back(tasks.back().identity());
    }
    Job j;
    j.kind = "clean";
    j.title = fmt::format("{} without the tasks' test texts", corpus_name);
    j.done = "clean.json";
    j.deps = data_deps();
    j.tags = {{"corpus", corpus_name}};
    j.internal = [file, reader, tasks, corpus_name](const std::string& out, const std::string& dir) {
      std::vector<TestTexts> tests;
      for (const auto& t : tasks) tests.push_back({t.name, t.test_texts(out)});
      const DecontaminationReport r =
          remove_test_texts((fs::path(out) / file).string(), reader, tests, (fs::path(dir) / "corpus.txt").string());
      const json report = {{"corpus", corpus_name},
                           {"source", file},
                           {"documents", r.documents},
                           {"skipped_bad_rows", r.skipped},
                           {"removed", r.removed},
                           {"kept", r.documents - r.removed},
                           {"test_texts", r.test_texts},
                           {"test_texts_found", r.test_texts_found},
                           {"removed_by_task", r.removed_by_task},
                           {"examples", r.examples},
                           {"rule", fmt::format("a document is removed when it contains a task's test text (uncased, "
                                                "normalised words; texts of fewer than {} words only as the whole "
                                                "document)",
                                                kMinWordsInside)}};
      std::string summary = fmt::format("{}: {} of {} documents removed for containing test texts of {} tasks",
                                        corpus_name, r.removed, r.documents, tests.size());
      if (r.skipped > 0) summary += fmt::format(" ({} bad rows skipped)", r.skipped);
      write_file_atomic((fs::path(dir) / "log.txt").string(), summary + "\n" + report.dump(2) + "\n");
      fmt::print(stderr, "reproduce: {}\n", summary);
      write_file_atomic((fs::path(dir) / "clean.json").string(), report.dump(2) + "\n");  // last: it marks done
    };
    const int id = add(std::move(j), identity);
    cleaned_[corpus_name] = id;
    return id;
  }

  // A pretrain or finetune run of `cfg`, resumable, in the folder its arguments name.
  int add_trainer(const std::string& kind, const std::string& title, const json& cfg, std::vector<int> deps,
                  const json& tags) {
    Job j;
    j.kind = j.schema = kind;
    j.title = title;
    j.done = "metrics.json";
    j.trainer = true;
    j.deps = std::move(deps);
    j.tags = tags;
    j.config = cfg;
    j.config["auto_resume"] = true;  // a rerun continues the run from its last checkpoint
    return add_command(std::move(j), "out", "");
  }

  json finetune_config(const std::string& task_name) const {
    json cfg = need(plan_, "finetune", "top level");
    cfg.erase("lrs");
    const json& t = task(task_name);
    cfg = merged(cfg, t.value("finetune", json::object()));
    const std::string where = "tasks." + task_name;
    cfg["train"] = data(need_string(t, "train", where));
    if (t.contains("test")) cfg["test"] = data(need_string(t, "test", where));
    cfg["format"] = need_string(t, "format", where);
    if (t.contains("classes")) cfg["classes"] = data(need_string(t, "classes", where));
    return cfg;
  }

  // One fine-tuning run: from the pre-trained run `init` (or from scratch when init < 0).
  int finetune(const std::string& task_name, const std::string& arch_name, int init, int seed, int sample_seed,
               double lr) {
    json cfg = merged(finetune_config(task_name), arch(arch_name));
    cfg["cache_dir"] = kSharedCache;
    cfg["seed"] = seed;
    cfg["sample_seed"] = sample_seed;
    cfg["lr"] = lr;
    std::vector<int> deps = vocab_deps();
    if (init >= 0) {
      check_against_pretraining(cfg, out_.graph.at(init), task_name);
      cfg["init"] = out_.graph.at(init).dir;
      deps.push_back(init);
    } else {
      cfg["scratch"] = true;
      cfg["vocab"] = vocab_path_;
    }
    return add_trainer("finetune",
                       fmt::format("fine-tune {} {} on {} (seed {}, lr {})", init >= 0 ? "pre-trained" : "scratch",
                                   arch_name, task_name, seed, lr),
                       cfg, deps, {{"task", task_name}, {"arch", arch_name}, {"seed", seed}, {"lr", lr}});
  }

  // A fine-tune from a pre-trained run takes its architecture and case handling; what the plan
  // gives the fine-tune must agree with them, as `tlm finetune --init` will check, so a
  // contradiction is found now and not after all pre-training.
  static void check_against_pretraining(const json& finetune_cfg, const Job& pre, const std::string& task_name) {
    const json p = resolved(job_schema("pretrain"), pre.config, pre.title);
    const json f = resolved(job_schema("finetune"), finetune_cfg, "fine-tuning on " + task_name);
    auto ffn = [](const json& c) {
      return c.at("ffn").get<int>() > 0 ? c.at("ffn").get<int>() : 4 * c.at("hidden").get<int>();
    };
    std::vector<std::string> keys = architecture_keys();
    keys.push_back("cased");
    for (const auto& key : keys) {
      if (!finetune_cfg.contains(key)) continue;  // taken from the pre-trained run
      const bool same = key == "ffn" ? ffn(f) == ffn(p) : f.at(key) == p.at(key);
      if (!same) {
        throw Error(
            fmt::format("plan: fine-tuning on {}: {} = {} differs from the pre-training ({} = {}); set it "
                        "in the architecture, or alike in [pretrain] and [finetune]",
                        task_name, key, f.at(key).dump(), key, p.at(key).dump()));
      }
    }
  }

  // runs[lr][seed] for one arm; init_of(seed) gives the pre-trained run (or -1: scratch).
  json arm(const std::string& task_name, const std::string& arch_name, const std::function<int(int)>& init_of) {
    json runs = json::array();
    for (double lr : lrs_) {
      json per_seed = json::array();
      for (int s = 1; s <= seeds_; ++s) {
        per_seed.push_back(finetune(task_name, arch_name, init_of(s), seed_of(s), seed_of(s), lr));
      }
      runs.push_back(per_seed);
    }
    return runs;
  }

  // fastText on each seed's samples of a task (the ones its fine-tuning runs draw), one run per
  // seed trying every setting of [fasttext]'s grid; the same runs for every experiment.
  json fasttext_arm(const std::string& task_name) {
    const json ft = finetune_config(task_name);
    json base = plan_["fasttext"];
    for (const auto& f : job_schema("fasttext").fields()) {
      if (plan_sets_key("fasttext", f.key) && ft.contains(f.key)) base[f.key] = ft[f.key];
    }
    base["vocab"] = vocab_path_;  // test items named as the tiny models' runs name them
    try {                         // the program is needed: found now, before any run starts
      find_program(base.value("fasttext", std::string("fasttext")), kFastTextInstall);
    } catch (const Error& e) {
      throw Error(fmt::format("plan: [fasttext]: {}", e.what()));
    }
    json runs = json::array();
    for (int s = 1; s <= seeds_; ++s) {
      Job j;
      j.kind = j.schema = "fasttext";
      j.title = fmt::format("fastText on {} (seed {})", task_name, seed_of(s));
      j.done = "metrics.json";
      j.deps = vocab_deps();
      j.tags = {{"task", task_name}, {"seed", seed_of(s)}};
      j.config = base;
      j.config["seed"] = seed_of(s);
      j.config["sample_seed"] = seed_of(s);
      runs.push_back(add_command(std::move(j), "out", ""));
    }
    return runs;
  }

  int default_sequences() const {
    return static_cast<int>(need_int(need(plan_, "pretrain", "top level"), "sequences", "pretrain"));
  }
  std::string default_corpus() const { return need_string(need(plan_, "pretrain", "top level"), "corpus", "pretrain"); }

  // The pre-trained runs of one setting: one shared by all seeds, or one per seed.
  std::function<int(int)> pretrained(const std::string& arch_name, const std::string& corpus_name, int64_t sequences,
                                     int64_t epochs = 0) {
    std::vector<int> ids;
    for (int s = 1; s <= (per_seed_pretrain_ ? seeds_ : 1); ++s)
      ids.push_back(pretrain(arch_name, corpus_name, sequences, seed_of(s), epochs));
    return [ids](int seed) { return ids.size() == 1 ? ids[0] : ids[seed - 1]; };
  }

  json expand_e1(const json& e) {
    json out = json::array();
    for (const auto& task_name : need_strings(e, "tasks", "e1")) {
      task(task_name);
      for (const auto& arch_name : need_strings(e, "architectures", "e1")) {
        const auto init = pretrained(arch_name, default_corpus(), default_sequences());
        json row = {{"task", task_name},
                    {"arch", arch_name},
                    {"pretrain", init(1)},
                    {"pretrained", arm(task_name, arch_name, init)},
                    {"scratch", arm(task_name, arch_name, [](int) { return -1; })}};
        if (plan_.contains("fasttext")) row["fasttext"] = fasttext_arm(task_name);
        out.push_back(row);
      }
    }
    return out;
  }

  json expand_e2(const json& e) {
    const std::string task_name = need_string(e, "task", "e2"), arch_name = need_string(e, "architecture", "e2");
    json out = {{"task", task_name}, {"arch", arch_name}, {"sizes", json::array()}};
    out["scratch"] = arm(task_name, arch_name, [](int) { return -1; });
    const json& sequences = need(e, "sequences", "e2");
    for (size_t i = 0; i < sequences.size(); ++i) {
      // Optional epochs per size: a curve past the sequences the corpus holds.
      const int64_t epochs = e.contains("epochs") ? e["epochs"][i].get<int64_t>() : 0;
      const auto init = pretrained(arch_name, default_corpus(), sequences[i].get<int64_t>(), epochs);
      json size = {{"sequences", sequences[i]}, {"pretrain", init(1)}, {"runs", arm(task_name, arch_name, init)}};
      if (epochs > 0) size["epochs"] = epochs;
      out["sizes"].push_back(size);
    }
    return out;
  }

  json expand_e3(const json& e) {
    const std::string task_name = need_string(e, "task", "e3"), arch_name = need_string(e, "architecture", "e3");
    const int64_t sequences = need_int(e, "sequences", "e3");
    json out = {{"task", task_name}, {"arch", arch_name}, {"sequences", sequences}, {"corpora", json::array()}};
    out["scratch"] = arm(task_name, arch_name, [](int) { return -1; });
    const json& t = task(task_name);
    for (const auto& corpus_name : need_strings(e, "corpora", "e3")) {
      Job j;
      j.kind = j.schema = "overlap";
      j.title = fmt::format("token overlap of {} with {}", corpus_name, task_name);
      j.done = "overlap.json";
      j.deps = vocab_deps();
      const int clean = clean_corpus(corpus_name);
      j.deps.push_back(clean);
      j.config = {{"corpus", json::array({out_.graph.at(clean).dir + "/corpus.txt"})},
                  {"corpus_format", "text"},
                  {"data", data(need_string(t, "train", "tasks." + task_name))},
                  {"format", need_string(t, "format", "tasks." + task_name)},
                  {"vocab", vocab_path_}};
      if (t.contains("classes")) j.config["classes"] = data(t["classes"]);
      if (plan_.value("pretrain", json::object()).value("cased", false)) j.config["cased"] = true;
      const int ov = add_command(std::move(j), "out", "overlap.json");
      const auto init = pretrained(arch_name, corpus_name, sequences);
      out["corpora"].push_back(
          {{"corpus", corpus_name}, {"overlap", ov}, {"pretrain", init(1)}, {"runs", arm(task_name, arch_name, init)}});
    }
    return out;
  }

  json expand_e4(const json& e) {
    const std::string task_name = need_string(e, "task", "e4");
    const std::string member_arch = need_string(e, "member", "e4"), deep_arch = need_string(e, "deep", "e4");
    const int k = static_cast<int>(need_int(e, "members", "e4"));
    TLM_CHECK(k >= 2, "plan: [e4] members must be at least 2");
    TLM_CHECK(task(task_name).contains("test"), "plan: [e4] task {} needs a test file", task_name);
    // Members: each pre-trained with its own seed (which also draws its own pre-training sample).
    // For every seed s, the members and the deep model are fine-tuned with seed s on seed s's
    // training sample, so committee and deep model are compared seed by seed; each arm chooses its
    // learning rate on validation accuracy over all seeds, as E1's arms do.
    json out = {
        {"task", task_name}, {"member_arch", member_arch}, {"deep_arch", deep_arch}, {"members", json::array()}};
    std::vector<int> all_deps = vocab_deps();
    auto grid_of = [&](const json& runs) {  // runs[lr][seed] as folders, each a dependency
      std::vector<std::vector<std::string>> grid;
      for (const auto& per_seed : runs) {
        grid.emplace_back();
        for (int id : per_seed) {
          grid.back().push_back(out_.graph.at(id).dir);
          all_deps.push_back(id);
        }
      }
      return grid;
    };
    std::vector<std::vector<std::vector<std::string>>> member_grids;
    for (int m = 1; m <= k; ++m) {
      const int pre = pretrain(member_arch, default_corpus(), default_sequences(), seed_of(m));
      const json runs = arm(task_name, member_arch, [pre](int) { return pre; });
      out["members"].push_back({{"pretrain", pre}, {"runs", runs}});
      member_grids.push_back(grid_of(runs));
    }
    const int deep_pre = pretrain(deep_arch, default_corpus(), default_sequences(), seed_of(1));
    const json deep_runs = arm(task_name, deep_arch, [deep_pre](int) { return deep_pre; });
    out["deep"] = {{"pretrain", deep_pre}, {"runs", deep_runs}};
    if (plan_.contains("fasttext")) out["fasttext"] = fasttext_arm(task_name);
    const auto deep_grid = grid_of(deep_runs);
    // The run of seed s at the rate the arm chose on validation.
    auto chosen = [](const std::string& o, const std::vector<std::vector<std::string>>& grid, int s) {
      return grid[choose_lr(o, grid)][s - 1];
    };
    const json ft = finetune_config(task_name);
    // The test data as the members' fine-tuning sampled it (the runs' own tokenizer and length).
    json data_config = {{"data", ft.at("test")}, {"format", ft.at("format")}};
    if (ft.contains("classes")) data_config["classes"] = ft.at("classes");
    // A job on the chosen runs of seed s, known once every run of the arms has finished; its name
    // hashes the candidate runs.
    using Outputs = std::vector<std::pair<std::string, std::string>>;  // configuration key -> file in the job's folder
    auto on_chosen_runs = [&](Job j, int s, bool with_reference, const Outputs& outputs) {
      j.deps = all_deps;
      for (const auto& [k2, v] : data_config.items()) j.config[k2] = v;
      const JobSchema& schema = job_schema(j.schema);
      set_precision(j, schema);
      identify(j, {schema.identity(resolved(schema, j.config, j.title)), member_grids,
                   with_reference ? deep_grid : decltype(deep_grid){}, s});
      for (const auto& [key, file] : outputs) j.config[key] = j.dir + "/" + file;
      auto late = [base = j.config, member_grids, deep_grid, chosen, s, with_reference](const std::string& o) {
        json config = base;
        config["model"] = json::array();
        for (const auto& grid : member_grids) config["model"].push_back(chosen(o, grid, s));
        if (with_reference) config["reference"] = chosen(o, deep_grid, s);
        return config;
      };
      json example = base_example(j.config, member_grids, deep_grid, with_reference);
      schema.check(example, fmt::format("plan: {}", j.title));  // checked now, with placeholder runs
      j.late_config = late;
      return out_.graph.add(std::move(j));
    };
    out["committees"] = json::array();
    for (int s = 1; s <= seeds_; ++s) {
      Job c;
      c.kind = "committee";
      c.schema = "eval";
      c.title = fmt::format("soft committee of {} {} members on {} (seed {})", k, member_arch, task_name, seed_of(s));
      c.done = "eval.json";
      c.config = {{"per_label", ft.value("per_label_test", json(0))},
                  {"seed", ft.value("test_seed", json(0))},
                  {"cap_per_label", ft.value("cap_per_label", false)}};
      out["committees"].push_back(
          on_chosen_runs(std::move(c), s, false, {{"out", "eval.json"}, {"predictions", "predictions.safetensors"}}));
    }
    Job lat;
    lat.kind = lat.schema = "latency";
    lat.title = fmt::format("inference latency: the committee, one member and the {} model, interleaved", deep_arch);
    lat.done = "latency.json";
    lat.exclusive = true;
    lat.config = {{"texts", e.value("latency_texts", 200)},
                  {"batch", e.value("latency_batch", 64)},
                  {"rounds", e.value("latency_rounds", 10)}};
    out["latency"] = on_chosen_runs(std::move(lat), 1, true, {{"json", "latency.json"}});
    return out;
  }

  // A job configuration with the first candidate runs in place of the chosen ones, to check it.
  static json base_example(json config, const std::vector<std::vector<std::vector<std::string>>>& member_grids,
                           const std::vector<std::vector<std::string>>& deep_grid, bool with_reference) {
    config["model"] = json::array();
    for (const auto& grid : member_grids) config["model"].push_back(grid[0][0]);
    if (with_reference) config["reference"] = deep_grid[0][0];
    return config;
  }

  const json& plan_;
  ExpandOptions opt_;
  PlanRuns out_;
  int seeds_ = 1;
  int first_seed_ = 1;  // seeds are first_seed, first_seed + 1, ...: another set for a robustness run
  int seed_of(int index) const { return first_seed_ + index - 1; }
  bool per_seed_pretrain_ = false;
  std::vector<double> lrs_;
  std::string data_dir_, vocab_path_;
  int data_job_ = -1, vocab_job_ = -1;
  std::map<std::string, int> cleaned_;  // corpus name -> its cleaning job
};

}  // namespace

int JobGraph::add(Job job) {
  const auto it = index_.find(job.id);
  if (it != index_.end()) return it->second;
  const int i = static_cast<int>(jobs_.size());
  index_[job.id] = i;
  jobs_.push_back(std::move(job));
  return i;
}

PlanRuns expand_plan(const json& plan, const ExpandOptions& options) { return Expander(plan, options).run(); }

std::vector<double> mean_valid_accuracy(const std::string& out, const std::vector<std::vector<std::string>>& runs) {
  std::vector<double> means;
  for (const auto& per_seed : runs) {
    double sum = 0;
    for (const auto& r : per_seed) sum += final_valid_accuracy(out, r);
    means.push_back(sum / static_cast<double>(per_seed.size()));
  }
  return means;
}

int choose_lr(const std::string& out, const std::vector<std::vector<std::string>>& runs) {
  TLM_CHECK(!runs.empty(), "no learning rates to choose from");
  if (runs.size() == 1) return 0;
  const std::vector<double> means = mean_valid_accuracy(out, runs);
  return static_cast<int>(std::max_element(means.begin(), means.end()) - means.begin());  // the first of ties
}

void scale_plan(json& plan, double scale) {
  TLM_CHECK(scale > 0 && scale <= 1, "--scale must be in (0, 1], got {}", scale);
  if (scale == 1) return;
  auto shrink = [&](json& v, int64_t floor) {
    if (v.is_number_integer() && v.get<int64_t>() > 0) {
      v = std::max<int64_t>(floor, std::llround(v.get<int64_t>() * scale));
    }
  };
  auto shrink_section = [&](json& s) {
    if (!s.is_object()) return;
    for (const char* k : {"sequences"}) {
      if (s.contains(k)) shrink(s[k], 64);
    }
    for (const char* k : {"per_label_train", "per_label_test"}) {
      if (s.contains(k)) shrink(s[k], 4);
    }
    if (s.contains("valid_per_label")) shrink(s["valid_per_label"], 2);
    if (s.contains("epochs")) shrink(s["epochs"], 1);
  };
  shrink_section(plan["pretrain"]);
  shrink_section(plan["finetune"]);
  if (plan.contains("tasks")) {
    for (auto& [name, t] : plan["tasks"].items()) {
      if (t.contains("finetune")) shrink_section(t["finetune"]);
    }
  }
  if (plan.contains("e2")) {
    auto shrink_e2 = [&](json& part) {
      for (auto& n : part["sequences"]) shrink(n, 64);
      if (part.contains("epochs")) {
        for (auto& n : part["epochs"]) shrink(n, 1);
      }
    };
    if (plan["e2"].is_array()) {
      for (auto& part : plan["e2"]) shrink_e2(part);
    } else {
      shrink_e2(plan["e2"]);
    }
  }
  if (plan.contains("e3")) shrink(plan["e3"]["sequences"], 64);
  // fastText's epochs too (its examples shrink with [finetune]'s); values that meet after
  // rounding are tried once.
  if (plan.contains("fasttext") && plan["fasttext"].contains("epochs")) {
    json kept = json::array();
    for (json n : plan["fasttext"]["epochs"]) {
      shrink(n, 1);
      if (std::find(kept.begin(), kept.end(), n) == kept.end()) kept.push_back(n);
    }
    plan["fasttext"]["epochs"] = kept;
  }
  plan["scale"] = scale;
}

}  // namespace tlm::experiment
