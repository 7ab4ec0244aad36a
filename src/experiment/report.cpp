#include "experiment/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <variant>

#include "experiment/format.h"
#include "experiment/svg.h"
#include "tlm/check.h"
#include "tlm/file_io.h"

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Heading {
  int level;
  std::string text;
};
struct Paragraph {
  std::string text;
};
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
struct Plot {
  std::string id, caption, svg;
};
using Block = std::variant<Heading, Paragraph, Table, Plot>;

std::string num(const json& v, int digits = 3) {
  return v.is_number() ? fmt::format("{:.{}f}", v.get<double>(), digits) : "-";
}
// Each task's fine-tuning counts per label: the plan's [finetune] ones, where the task's own
// finetune table overrides them (0 training or test examples: all of them). Tasks with the same
// counts share one phrase, in the order of the plan's tasks table (by name).
std::string fine_tuning_counts(const json& plan) {
  const json& ft = plan["finetune"];
  const auto counts_of = [&](const json& over) {
    const auto count = [&](const char* key) {
      return over.contains(key) ? over[key].get<int64_t>() : ft.value(key, int64_t{0});
    };
    const auto all_or = [](int64_t n) { return n == 0 ? std::string("all") : std::to_string(n); };
    return fmt::format(
        "{} training examples per label of which {} are held out for validation, {} test examples per label",
        all_or(count("per_label_train")), count("valid_per_label"), all_or(count("per_label_test")));
  };
  std::vector<std::pair<std::string, std::string>> phrases;  // counts, their tasks
  const json tasks = plan.contains("tasks") ? plan["tasks"] : json::object();
  for (const auto& [name, task] : tasks.items()) {
    const std::string counts = counts_of(task.is_object() ? task.value("finetune", json::object()) : json::object());
    auto same = std::find_if(phrases.begin(), phrases.end(), [&](const auto& p) { return p.first == counts; });
    if (same == phrases.end()) {
      phrases.emplace_back(counts, name);
    } else {
      same->second += ", " + name;
    }
  }
  if (phrases.empty()) return counts_of(json::object());  // no tasks table: the plan's own counts
  if (phrases.size() == 1) return phrases.front().first;
  std::string out;
  for (const auto& [counts, names] : phrases) out += fmt::format("{}{} ({})", out.empty() ? "" : "; ", counts, names);
  return out;
}
std::string mean_std(const json& s) { return pct(s["mean"]) + " ± " + pct(s["std"]); }
std::string si(double v) {
  if (v >= 1e12) return fmt::format("{:.2f} T", v / 1e12);
  if (v >= 1e9) return fmt::format("{:.2f} G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f} M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f} k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

class Builder {
 public:
  Builder(const json& r, const std::vector<ComparedRun>& compared) : r_(r), compared_(compared) {}

  std::vector<Block> build() {
    const json& plan = r_["plan"];
    add(Heading{1, fmt::format("tlm reproduce: {}", plan.value("name", "plan"))});
    if (plan.contains("description")) add(Paragraph{plan["description"]});
    if (r_.contains("fasttext")) against_fasttext();
    findings();
    setup();
    pretraining();
    if (r_.contains("e1")) e1();
    if (r_.contains("e2")) e2();
    if (r_.contains("e3")) e3();
    if (r_.contains("e4")) e4();
    manifest();
    return std::move(blocks_);
  }

 private:
  void add(Block b) { blocks_.push_back(std::move(b)); }

  // The practitioner's question first: at this label budget, does a tiny model beat fastText?
  void against_fasttext() {
    add(Heading{2, "Tiny models against fastText"});
    add(Paragraph{
        "Does a pre-trained tiny model, or a soft committee of them, beat a tuned fastText at this label budget? "
        "fastText (Debian's program, one thread, seeded) trains on exactly each seed's training examples, as "
        "BERT's pre-tokenizer splits them into words; its learning rate, epochs and word n-grams are chosen from a "
        "grid on the mean accuracy over seeds on the same validation split, as each tiny model's arm chooses its "
        "learning rate; all are scored on the same test sample. Differences are paired over seeds (95% CI); "
        "McNemar's exact test compares the two item by item within each seed."});
    Table t{{"task", "examples (train + validation)", "model", "model (%)", "fastText (%)", "fastText setting",
             "model minus fastText, points [95% CI]", "verdict", "McNemar p per seed"},
            {}};
    for (const auto& row : r_["fasttext"]) {
      const json& ft = row["fasttext"];
      std::string p;
      for (const auto& m : row["mcnemar"]) p += fmt::format("{}{:.3g}", p.empty() ? "" : ", ", m["p"].get<double>());
      t.rows.push_back(
          {row["task"], fmt::format("{} + {}", ft.value("train_examples", 0), ft.value("valid_examples", 0)),
           row["model"], mean_std(row["summary"]), mean_std(ft["summary"]), ft["chosen_setting"],
           interval(row["difference"]["summary"]), "**" + row["difference"]["verdict"].get<std::string>() + "**", p});
    }
    add(t);
    std::string edges;
    std::set<std::string> seen;
    for (const auto& row : r_["fasttext"]) {
      const json& ft = row["fasttext"];
      if (ft.value("at_grid_edge", json::array()).empty() || !seen.insert(row["task"]).second) continue;
      edges += fmt::format("{}{}: {}", edges.empty() ? "" : "; ", row["task"].get<std::string>(),
                           fmt::join(ft["at_grid_edge"].get<std::vector<std::string>>(), ", "));
    }
    if (!edges.empty()) {
      add(Paragraph{"fastText's chosen setting lies at an end of its grid (" + edges +
                    "): a wider grid might tune it better."});
    }
  }

  void findings() {
    add(Heading{2, "Findings"});
    add(Paragraph{
        "Each finding is judged from paired differences over seeds (same seed, same training sample, both arms at "
        "the learning rate each chose on validation data): it **held** when the 95% confidence interval of the "
        "effect lies above zero, **did not hold** when it lies below, and is **inconclusive** otherwise (also when "
        "every seed gave the same value: no interval). F1 is **mixed** when one setting held and another "
        "significantly did not. F4 holds when the 95% interval of the committee's accuracy minus the deep model's, "
        "paired over seeds, lies above -2 points (a match within 2 points, or better) and the 95% interval of its "
        "single-text latency over the deep model's, from interleaved timing rounds, lies below 1.10 (the interval "
        "covers round-to-round variation on this one machine, the rounds taken as independent, each round "
        "rotating the order); it does not hold when the committee is significantly worse, or slower (the whole "
        "latency interval above 1.10). F5 rolls up its comparisons with fastText as F1 does its settings."});
    Table t{{"", "claim", "verdict", "evidence"}, {}};
    for (const auto& f : r_["findings"]) {
      const std::string v = "**" + f["verdict"].get<std::string>() + "**";
      t.rows.push_back({f["id"], f["claim"], robust(f) ? v : v + " (not robust: see Robustness)", f["evidence"]});
    }
    add(t);
    if (!compared_.empty()) robustness();
  }

  // A finding's verdict in a compared run ("-" where it has none).
  static std::string verdict_in(const json& results, const std::string& id) {
    for (const auto& f : results["findings"]) {
      if (f["id"] == id) return f["verdict"];
    }
    return "-";
  }
  bool robust(const json& finding) const {
    for (const auto& c : compared_) {
      if (verdict_in(c.results, finding["id"]) != finding["verdict"]) return false;
    }
    return true;
  }
  static std::string describe(const json& results) {
    const json& m = results["manifest"];
    const int first = results.value("first_seed", 1), n = results.value("seeds", 1);
    return fmt::format(
        "seeds {}-{}, OPENBLAS_CORETYPE {}, {}", first, first + n - 1,
        m.value("openblas_coretype", json(nullptr)).is_null() ? "unset" : m["openblas_coretype"].get<std::string>(),
        m.value("cpu", "unknown CPU"));
  }

  void robustness() {
    add(Heading{2, "Robustness"});
    add(
        Paragraph{"The same plan run again with other seeds or other floating-point kernels: a finding whose verdict "
                  "differs between the runs is not robust, whatever one run says."});
    Table t{{"", "this run"}, {}};
    for (const auto& c : compared_) t.header.push_back(c.label);
    std::vector<std::string> what = {"run", describe(r_)};
    for (const auto& c : compared_) what.push_back(describe(c.results));
    t.rows.push_back(what);
    for (const auto& f : r_["findings"]) {
      std::vector<std::string> row = {f["id"].get<std::string>() + (robust(f) ? "" : " (not robust)"),
                                      f["verdict"].get<std::string>()};
      for (const auto& c : compared_) row.push_back(verdict_in(c.results, f["id"]));
      t.rows.push_back(row);
    }
    add(t);
  }

  void setup() {
    const json& plan = r_["plan"];
    add(Heading{2, "Setup"});
    std::string archs;
    for (const auto& [name, a] : plan["architectures"].items()) {
      archs += fmt::format("{}{}: {} x {} ({} heads)", archs.empty() ? "" : "; ", name, a.value("layers", 0),
                           a.value("hidden", 0), a.value("heads", 0));
    }
    std::string lrs;
    for (const auto& lr : r_["lrs"]) lrs += (lrs.empty() ? "" : ", ") + fmt::format("{}", lr.get<double>());
    const json& pre = plan["pretrain"];
    const json& ft = plan["finetune"];
    add(Paragraph{fmt::format(
        "Architectures: {}. Pre-training: masked-language modelling on {} sequences of up to {} tokens "
        "(mode {}), epochs {}, batch {}, lr {}. Fine-tuning: {} (one test sample for every run), epochs {}, learning "
        "rate chosen "
        "per arm from {{{}}} on validation accuracy, {} seeds (from {}){}.",
        archs, pre.value("sequences", 0), pre.value("max_len", 128), pre.value("seq_mode", "first"),
        pre.value("epochs", 1), pre.value("batch", 32), pre.value("lr", 0.0), fine_tuning_counts(plan),
        ft.value("epochs", 1), lrs, r_["seeds"].get<int>(), r_.value("first_seed", 1),
        plan.value("pretrain_per_seed", false) ? ", each seed with its own pre-trained model"
                                               : ", the seeds sharing one pre-trained model per setting")});
    if (plan.contains("scale")) add(Paragraph{fmt::format("Scaled by {} (--scale).", plan["scale"].get<double>())});
    if (r_.contains("decontamination") && !r_["decontamination"].empty()) {
      add(Paragraph{
          "Before any use (vocabulary, pre-training, overlap), every corpus loses the documents that contain a test "
          "text of any task (compared as uncased words; texts of fewer than four words only as a whole document), "
          "and the vocabulary sees only the tasks' training texts:"});
      Table t{{"corpus", "documents", "removed", "kept", "test texts found"}, {}};
      for (const auto& [name, d] : r_["decontamination"].items()) {
        t.rows.push_back(
            {name, std::to_string(d["documents"].get<int64_t>()), std::to_string(d["removed"].get<int64_t>()),
             std::to_string(d["kept"].get<int64_t>()),
             fmt::format("{} of {}", d["test_texts_found"].get<int64_t>(), d["test_texts"].get<int64_t>())});
      }
      add(t);
    }
  }

  void pretraining() {
    add(Heading{2, "Pre-trained models"});
    add(Paragraph{
        "Masked-LM loss on held-out sequences next to the loss of predicting every masked token from its unigram "
        "frequency alone: a model that has learnt anything beyond word frequency is well below the baseline."});
    Table t{{"run", "arch", "corpus", "sequences", "seed", "steps", "tokens", "MLM loss", "unigram baseline"}, {}};
    for (const auto& p : r_["pretraining"]) {
      t.rows.push_back({p["run"], p["arch"], p["corpus"], std::to_string(p["sequences"].get<int64_t>()),
                        std::to_string(p["seed"].get<int>()), std::to_string(p["steps"].get<int64_t>()),
                        si(p["tokens"].get<double>()), num(p["valid_mlm_loss"]), num(p["unigram_loss"])});
    }
    add(t);
  }

  void trend_paragraph(const json& e, const std::string& what) {
    if (!e.contains("trend")) return;
    add(Paragraph{fmt::format("{}, paired over seeds: {} points ({}).", what, interval(e["trend"]["summary"]),
                              e["trend"]["verdict"].get<std::string>())});
  }

  static std::string arm_lr(const json& a) { return fmt::format("{}", a["chosen_lr"].get<double>()); }

  // The mean gap of each setting (rows[i]["gap"]) at xs[i], with its 95% interval as error bars.
  static Plot gap_plot(const std::string& id, const std::string& title, const std::string& x_label, bool log_x,
                       const std::vector<double>& xs, const json& rows, const std::string& caption) {
    LinePlot p;
    p.id = id;
    p.title = title;
    p.x_label = x_label;
    p.y_label = "gap (points)";
    p.log_x = log_x;
    p.zero_line = true;
    Series s{"gap", xs, {}, {}, false};
    for (const auto& row : rows) {
      const json& g = row["gap"]["summary"];
      s.y.push_back(100 * g["mean"].get<double>());
      s.err.push_back(g["ci95"].is_null() ? 0.0 : 100 * (g["ci95"][1].get<double>() - g["mean"].get<double>()));
    }
    p.series.push_back(s);
    return Plot{id, caption, render_svg(p)};
  }

  void e1() {
    add(Heading{2, "E1: pre-trained vs from scratch"});
    const bool with_fasttext = !r_["e1"].empty() && r_["e1"][0].contains("fasttext");
    Table t{{"task", "arch", "scratch (%)", "lr", "pre-trained (%)", "lr", "gap, points [95% CI]", "verdict"}, {}};
    if (with_fasttext) t.header.push_back("fastText (%)");
    for (const auto& row : r_["e1"]) {
      t.rows.push_back({row["task"], row["arch"], mean_std(row["scratch"]["summary"]), arm_lr(row["scratch"]),
                        mean_std(row["pretrained"]["summary"]), arm_lr(row["pretrained"]),
                        interval(row["gap"]["summary"]), row["gap"]["verdict"]});
      if (with_fasttext) t.rows.back().push_back(mean_std(row["fasttext"]["summary"]));
    }
    add(t);
    for (const auto& row : r_["e1"]) {
      LinePlot p;
      p.id = fmt::format("e1-{}-{}", row["task"].get<std::string>(), row["arch"].get<std::string>());
      // Test accuracy per epoch, or validation accuracy where the runs scored the test set only
      // at the end (test_every = "end"): a set both arms have a curve of.
      const auto both_have = [&](const std::string& of) {
        return row["pretrained"]["curve"].contains(of + "_mean") && row["scratch"]["curve"].contains(of + "_mean");
      };
      if (!both_have("test_accuracy") && !both_have("valid_accuracy")) continue;  // nothing per epoch to draw
      const std::string of = both_have("test_accuracy") ? "test_accuracy" : "valid_accuracy";
      const std::string set = of == "test_accuracy" ? "test" : "validation";
      p.title = fmt::format("{} ({}): {} accuracy per epoch", row["task"].get<std::string>(),
                            row["arch"].get<std::string>(), set);
      p.x_label = "epoch";
      p.y_label = set + " accuracy (%)";
      for (const char* arm : {"pretrained", "scratch"}) {
        Series s;
        s.name = std::string(arm == std::string("pretrained") ? "pre-trained" : "scratch");
        const auto& c = row[arm]["curve"];
        for (size_t e = 0; e < c[of + "_mean"].size(); ++e) {
          s.x.push_back(static_cast<double>(e + 1));
          s.y.push_back(100 * c[of + "_mean"][e].get<double>());
          s.err.push_back(100 * c[of + "_std"][e].get<double>());
        }
        s.dashed = s.name == "scratch";
        p.series.push_back(s);
      }
      add(Plot{p.id, "mean over seeds, bars one standard deviation, each arm at its chosen learning rate",
               render_svg(p)});
    }
  }

  void e2() {
    add(Heading{2, "E2: gap against pre-training size"});
    const bool several = r_["e2"].is_array();
    for (const json& e : several ? r_["e2"] : json::array({r_["e2"]})) {
      const std::string task = e["task"].get<std::string>();
      if (several) add(Heading{3, fmt::format("{} ({})", task, e["arch"].get<std::string>())});
      Table t{{"sequences", "epochs", "tokens", "MLM loss", "unigram", "pre-trained (%)", "lr", "gap, points [95% CI]",
               "verdict"},
              {}};
      const int64_t default_epochs = r_["plan"]["pretrain"].value("epochs", int64_t{1});
      for (const auto& z : e["sizes"]) {
        t.rows.push_back({std::to_string(z["sequences"].get<int64_t>()),
                          std::to_string(z.value("epochs", default_epochs)), si(z["pretrain_tokens"].get<double>()),
                          num(z["valid_mlm_loss"]), num(z["unigram_loss"]), mean_std(z["pretrained"]["summary"]),
                          arm_lr(z["pretrained"]), interval(z["gap"]["summary"]), z["gap"]["verdict"]});
      }
      add(t);
      add(Paragraph{fmt::format("From scratch: {}% ({} {}, lr {}).", mean_std(e["scratch"]["summary"]), task,
                                e["arch"].get<std::string>(), arm_lr(e["scratch"]))});
      trend_paragraph(e, "Gap at the largest size minus gap at the smallest");
      // Tokens on the axis: sizes may differ in sequences, in epochs, or both.
      std::vector<double> xs;
      for (const auto& z : e["sizes"]) xs.push_back(z["pretrain_tokens"].get<double>());
      add(gap_plot(several ? "e2-gap-vs-size-" + task : "e2-gap-vs-size",
                   several ? "gap against pre-training size: " + task : "gap against pre-training size",
                   "pre-training tokens", true, xs, e["sizes"],
                   "mean gap over seeds with its 95% confidence interval"));
    }
  }

  void e3() {
    const json& e = r_["e3"];
    add(Heading{2, "E3: gap against token overlap"});
    add(Paragraph{fmt::format(
        "Each corpus pre-trains the same architecture on {} sequences. Overlap: the share of the task's word-piece "
        "occurrences (training texts) whose token id occurs in the corpus; word-type overlap: the share of the task's "
        "distinct words found in the corpus.",
        e["sequences"].get<int64_t>())});
    Table t{{"corpus", "token overlap", "word-type overlap", "MLM loss", "unigram", "pre-trained (%)",
             "gap, points [95% CI]", "verdict"},
            {}};
    for (const auto& c : e["corpora"]) {
      t.rows.push_back({c["corpus"], pct(c["overlap"]["token_occurrence"]) + "%", pct(c["overlap"]["word_type"]) + "%",
                        num(c["valid_mlm_loss"]), num(c["unigram_loss"]), mean_std(c["pretrained"]["summary"]),
                        interval(c["gap"]["summary"]), c["gap"]["verdict"]});
    }
    add(t);
    trend_paragraph(e, "Gap with the highest-overlap corpus minus gap with the lowest");
    std::vector<double> xs;
    std::string names;
    for (const auto& c : e["corpora"]) {
      xs.push_back(100 * c["overlap"]["token_occurrence"].get<double>());
      names += (names.empty() ? "" : ", ") + c["corpus"].get<std::string>();
    }
    add(gap_plot("e3-gap-vs-overlap", "gap against token overlap", "token overlap with the task (%)", false, xs,
                 e["corpora"],
                 "corpora from left to right: " + names + "; mean gap over seeds with its 95% confidence interval"));
  }

  void e4() {
    const json& e = r_["e4"];
    add(Heading{2, "E4: soft committee of shallow models against a deep model"});
    add(Paragraph{fmt::format(
        "{} members ({} each), independently pre-trained (own seed, own pre-training sample). For every seed, the "
        "members and the deep model ({}) are fine-tuned with that seed on that seed's training sample, each arm at "
        "the learning rate it chose on validation over all seeds; the committee is the mean of the members' softmax "
        "outputs. Test: {} examples, the same for every seed. The difference is paired over seeds (Student's t, "
        "covering fine-tuning seeds; the members' and the deep model's pre-training runs are one each); McNemar's "
        "exact test compares committee and deep model item by item within each seed.",
        e["members"].size(), e["member_arch"].get<std::string>(), e["deep_arch"].get<std::string>(),
        e["test_examples"].get<int64_t>())});
    Table t{{"model", "lr"}, {}};
    const size_t seeds = e["committee"]["test_accuracy"].size();
    const int first_seed = r_.value("first_seed", 1);
    for (size_t sd = 0; sd < seeds; ++sd)
      t.header.push_back(fmt::format("seed {} (%)", first_seed + static_cast<int>(sd)));
    t.header.push_back("mean ± sd (%)");
    auto row = [&](const std::string& name, const std::string& lr, const json& acc, const json& summary) {
      std::vector<std::string> cells = {name, lr};
      for (const auto& a : acc) cells.push_back(pct(a));
      cells.push_back(mean_std(summary));
      t.rows.push_back(cells);
    };
    for (size_t i = 0; i < e["members"].size(); ++i) {
      const auto& m = e["members"][i];
      row(fmt::format("member {}", i + 1), arm_lr(m), m["test_accuracy"], m["summary"]);
    }
    row("deep", arm_lr(e["deep"]), e["deep"]["test_accuracy"], e["deep"]["summary"]);
    row("soft committee of all members", "", e["committee"]["test_accuracy"], e["committee"]["summary"]);
    add(t);
    std::string mcnemar;
    for (const auto& m : e["mcnemar"]) {
      mcnemar +=
          fmt::format("{}seed {}: {} items only the committee got right, {} only the deep model, p = {:.3g}",
                      mcnemar.empty() ? "" : "; ", m["seed"].get<int>(), m["committee_right_deep_wrong"].get<int64_t>(),
                      m["deep_right_committee_wrong"].get<int64_t>(), m["p"].get<double>());
    }
    add(Paragraph{fmt::format("Committee minus deep, paired over seeds: {} points. McNemar: {}.",
                              interval(e["difference"]["summary"]), mcnemar)});
    LinePlot p;
    p.id = "e4-committee-vs-k";
    p.title = "committee accuracy against its size";
    p.x_label = "members K";
    p.y_label = "test accuracy (%)";
    Series c{"committee", {}, {}, {}, false};
    Series deep{"deep " + e["deep_arch"].get<std::string>(), {}, {}, {}, true};
    const json& by_size = e["committee"]["by_size"];
    for (size_t k = 0; k < by_size[0].size(); ++k) {  // the mean over seeds of each seed's mean over K-subsets
      double mean = 0, sd = 0;
      for (const auto& per_seed : by_size) mean += per_seed[k]["mean_accuracy"].get<double>() / by_size.size();
      for (const auto& per_seed : by_size) {
        sd += std::pow(per_seed[k]["mean_accuracy"].get<double>() - mean, 2) / std::max<size_t>(1, by_size.size() - 1);
      }
      c.x.push_back(by_size[0][k]["k"].get<double>());
      c.y.push_back(100 * mean);
      c.err.push_back(100 * std::sqrt(sd));
      deep.x.push_back(by_size[0][k]["k"].get<double>());
      deep.y.push_back(100 * e["deep"]["summary"]["mean"].get<double>());
    }
    p.series = {c, deep};
    if (e.contains("fasttext")) {
      Series ft{"fastText", deep.x, {}, {}, true};
      ft.y.assign(deep.x.size(), 100 * e["fasttext"]["summary"]["mean"].get<double>());
      p.series.push_back(ft);
    }
    add(Plot{p.id,
             std::string("soft committee of K members: per seed the mean over random K-member subsets, then the mean "
                         "over seeds, bars one standard deviation over seeds; dashed: the deep model") +
                 (e.contains("fasttext") ? " and fastText on the same examples" : ""),
             render_svg(p)});

    const json& cmp = e["latency"]["comparison"];
    add(Heading{3, "Latency"});
    add(Paragraph{fmt::format(
        "The deep model, one member alone and the committee (members one after another, each with every thread; and "
        "side by side, {} of {} at once on {} threads) on the same {} test texts, after checking that one-at-a-time "
        "and batched predictions agree; then {} interleaved rounds of single-text timing, each round in another "
        "order. Ratios: per round, the committee's median single-text latency over the other's; the geometric mean "
        "over rounds with its 95% interval.",
        cmp["members_side_by_side"].get<int>(), cmp["members"].get<int>(), cmp["threads"].get<int>(),
        cmp["measured"]["reference"]["texts"].get<int>(), cmp["rounds"].get<int>())});
    Table lt{{"model", "single text p50 (ms)", "p90 (ms)", "batched (ms/text)", "parameters", "FLOPs/prediction"}, {}};
    BarPlot bars;
    bars.id = "e4-latency";
    bars.title = "inference latency";
    bars.y_label = "milliseconds";
    bars.categories = {"single text (p50)", "batched, per text"};
    const std::vector<std::pair<std::string, std::string>> names = {
        {"reference", "deep model (" + e["deep_arch"].get<std::string>() + ")"},
        {"member", "one member"},
        {"committee_sequential", "committee, one after another"},
        {"committee_concurrent", "committee, side by side"}};
    for (const auto& [key, name] : names) {
      if (!cmp["measured"].contains(key)) continue;
      const json& l = cmp["measured"][key];
      lt.rows.push_back({name, num(l["single"]["p50_ms"]), num(l["single"]["p90_ms"]), num(l["batched"]["ms_per_text"]),
                         si(l["params"].get<double>()), si(l["flops_per_prediction"].get<double>())});
      bars.groups.push_back({name, {l["single"]["p50_ms"].get<double>(), l["batched"]["ms_per_text"].get<double>()}});
    }
    add(lt);
    Table rt{{"ratio (single text)", "geometric mean", "95% CI"}, {}};
    for (const auto& [pair, ratio] : cmp["ratios"].items()) {
      rt.rows.push_back({pair, fmt::format("{:.3f}", ratio["geometric_mean"].get<double>()),
                         ratio["ci95"].is_null() ? "none"
                                                 : fmt::format("[{:.3f}, {:.3f}]", ratio["ci95"][0].get<double>(),
                                                               ratio["ci95"][1].get<double>())});
    }
    add(rt);
    add(Plot{bars.id, "lower is better", render_svg(bars)});
  }

  void manifest() {
    const json& m = r_["manifest"];
    add(Heading{2, "Runs"});
    add(Paragraph{fmt::format(
        "tlm {} ({}), {} on {} ({} threads, {} runs at a time); wall time {:.0f} s this session. Data: {}. "
        "Every run folder below holds its command's log, config.json, metrics.json and manifest.json.",
        m.value("tlm_version", ""), m.value("commit", ""), m.value("cpu", "unknown CPU"), m.value("host", ""),
        m.value("threads", 0), m.value("jobs", 1), m.value("wall_seconds", 0.0), m.value("data_dir", ""))});
    Table t{{"run", "what", "wall (s)", "attempts", "tokens", "FLOPs"}, {}};
    for (const auto& run : r_["runs"]) {
      t.rows.push_back({run["dir"], run["title"], fmt::format("{:.1f}", run["wall_seconds"].get<double>()),
                        std::to_string(run["attempts"].get<int>()),
                        run.contains("tokens") ? si(run["tokens"].get<double>()) : "",
                        run.contains("flops") ? si(run["flops"].get<double>()) : ""});
    }
    add(t);
  }

  const json& r_;
  const std::vector<ComparedRun>& compared_;
  std::vector<Block> blocks_;
};

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// **bold** in text becomes <strong> in HTML.
std::string html_text(const std::string& s) {
  std::string e = escape_xml(s), out;
  bool open = false;
  for (size_t i = 0; i < e.size(); ++i) {
    if (e.compare(i, 2, "**") == 0) {
      out += open ? "</strong>" : "<strong>";
      open = !open;
      ++i;
    } else {
      out += e[i];
    }
  }
  return out;
}

struct Rendered {
  std::string md, html;
  std::vector<std::pair<std::string, std::string>> svgs;  // (file name, svg)
};

Rendered render(const std::vector<Block>& blocks) {
  Rendered r;
  r.html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tlm reproduce report</title>\n"
      "<style>body{font-family:sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;color:#222}"
      "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;"
      "text-align:left}th{background:#f3f3f3}figure{display:inline-block;margin:0.5em}figcaption{font-size:12px;"
      "color:#555;max-width:560px}</style></head><body>\n";
  for (const auto& b : blocks) {
    if (const auto* h = std::get_if<Heading>(&b)) {
      r.md += std::string(h->level, '#') + " " + h->text + "\n\n";
      r.html += fmt::format("<h{0}>{1}</h{0}>\n", h->level, html_text(h->text));
    } else if (const auto* p = std::get_if<Paragraph>(&b)) {
      r.md += p->text + "\n\n";
      r.html += "<p>" + html_text(p->text) + "</p>\n";
    } else if (const auto* t = std::get_if<Table>(&b)) {
      std::string head = "|", sep = "|";
      r.html += "<table><tr>";
      for (const auto& c : t->header) {
        head.append(" ").append(md_cell(c)).append(" |");
        sep += " --- |";
        r.html.append("<th>").append(html_text(c)).append("</th>");
      }
      r.md += head + "\n" + sep + "\n";
      r.html += "</tr>\n";
      for (const auto& row : t->rows) {
        std::string line = "|";
        r.html += "<tr>";
        for (const auto& c : row) {
          line.append(" ").append(md_cell(c)).append(" |");
          r.html.append("<td>").append(html_text(c)).append("</td>");
        }
        r.md += line + "\n";
        r.html += "</tr>\n";
      }
      r.md += "\n";
      r.html += "</table>\n";
    } else if (const auto* pl = std::get_if<Plot>(&b)) {
      const std::string file = "plots/" + pl->id + ".svg";
      r.md += fmt::format("![{}]({})\n\n*{}*\n\n", pl->id, file, pl->caption);
      r.html += "<figure>" + pl->svg + "<figcaption>" + html_text(pl->caption) + "</figcaption></figure>\n";
      r.svgs.emplace_back(file, pl->svg);
    }
  }
  r.html += "</body></html>\n";
  return r;
}

}  // namespace

void write_report(const json& results, const std::string& dir, const std::vector<ComparedRun>& compared) {
  const Rendered r = render(Builder(results, compared).build());
  fs::create_directories(fs::path(dir) / "plots");
  for (const auto& [file, svg] : r.svgs) write_file_atomic((fs::path(dir) / file).string(), svg);
  write_file_atomic((fs::path(dir) / "report.md").string(), r.md);
  write_file_atomic((fs::path(dir) / "report.html").string(), r.html);
}

}  // namespace tlm::experiment
