#include "experiment/results.h"

#include <cmath>
#include <filesystem>

#include "experiment/format.h"
#include "experiment/runner.h"
#include "experiment/verdict.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/predictions.h"

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class Collector {
 public:
  Collector(const PlanRuns& runs, const std::string& out) : runs_(runs), out_(out) {}

  const Job& job(const json& index) const { return runs_.graph.at(index.get<int>()); }

  json read_json(const Job& j, const std::string& file) const {
    const fs::path p = fs::path(out_) / j.dir / file;
    TLM_CHECK(fs::exists(p), "{}: missing ({} has not finished)", p.string(), j.title);
    return read_json_file(p.string());
  }
  json metrics(const json& index) const { return read_json(job(index), "metrics.json"); }

  // One arm: runs[lr][seed] -> the learning rate chosen on validation, test accuracy per seed at
  // that rate, and the mean test-accuracy curve over epochs.
  json arm(const json& runs) const {
    std::vector<std::vector<std::string>> dirs;
    for (const auto& per_seed : runs) {
      std::vector<std::string> d;
      for (const auto& i : per_seed) d.push_back(job(i).dir);
      dirs.push_back(d);
    }
    // With one rate there is nothing to choose, and fine-tuning may have had no validation split.
    const json valid_by_lr = dirs.size() > 1 ? json(mean_valid_accuracy(out_, dirs)) : json::array({nullptr});
    const int chosen = choose_lr(out_, dirs);
    json out = {{"lrs", runs_.roles["lrs"]},
                {"valid_accuracy_by_lr", valid_by_lr},
                {"chosen_lr", runs_.roles["lrs"][chosen]},
                {"runs", dirs[chosen]}};
    std::vector<double> test;
    std::vector<json> histories;
    for (const auto& i : runs[chosen]) {
      const json m = metrics(i);
      test.push_back(m["test"]["accuracy"]);
      histories.push_back(m["history"]);
    }
    out["test_accuracy"] = test;
    out["summary"] = to_json(summarize(test));
    out["curve"] = epoch_curves(histories);
    return out;
  }

  // Per epoch, mean and standard deviation over seeds of the validation accuracy and of the test
  // accuracy, each where every epoch of every seed has it (runs with test_every = "end" score the
  // test set only at the end) and the seeds have as many epochs.
  static json epoch_curves(const std::vector<json>& histories) {
    json curves = json::object();
    for (const std::string of : {"test_accuracy", "valid_accuracy"}) {
      bool whole = !histories.empty();
      for (const json& h : histories) {
        whole = whole && h.size() == histories[0].size();
        for (const json& record : h) whole = whole && record.contains(of);
      }
      if (!whole) continue;
      json mean = json::array(), sd = json::array();
      for (size_t e = 0; e < histories[0].size(); ++e) {
        std::vector<double> at;
        for (const json& h : histories) at.push_back(h[e][of]);
        const Summary s = summarize(at);
        mean.push_back(s.mean);
        sd.push_back(s.std);
      }
      curves[of + "_mean"] = mean;
      curves[of + "_std"] = sd;
    }
    return curves;
  }

  // fastText's arm: runs[seed]. The grid's setting with the best mean validation accuracy over
  // seeds (the first of ties, in grid order; a setting that failed in any seed takes no part), as a
  // tiny model's arm chooses its learning rate, and per seed the test accuracy at that setting.
  json fasttext_arm(const json& runs) const {
    std::vector<json> m;
    json dirs = json::array();
    for (const auto& i : runs) {
      m.push_back(metrics(i));
      dirs.push_back(job(i).dir);
    }
    const json& grid = m.at(0).at("grid");
    json settings = json::array(), valid_by = json::array();
    int chosen = -1;
    double best = 0;
    for (size_t g = 0; g < grid.size(); ++g) {
      settings.push_back(grid[g]["setting"]);
      double sum = 0;  // summed, then divided, as mean_valid_accuracy
      bool failed = false;
      for (size_t s = 0; s < m.size(); ++s) {
        const json& row = m[s]["grid"].at(g);
        TLM_CHECK(row["setting"] == grid[g]["setting"], "{}: its grid differs from {}'s", dirs[s].get<std::string>(),
                  dirs[0].get<std::string>());
        failed = failed || row.contains("failed");
        if (!failed && grid.size() > 1) {
          TLM_CHECK(row["valid_accuracy"].is_number(), "{}: {} has no validation accuracy to choose on",
                    dirs[s].get<std::string>(), row["setting"].get<std::string>());
          sum += row["valid_accuracy"].get<double>();
        }
      }
      const double mean = sum / static_cast<double>(m.size());
      valid_by.push_back(failed || grid.size() == 1 ? json(nullptr) : json(mean));
      if (!failed && (chosen < 0 || mean > best)) {
        chosen = static_cast<int>(g);
        best = mean;
      }
    }
    TLM_CHECK(chosen >= 0, "{}: every setting of fastText's grid failed in some seed", dirs[0].get<std::string>());
    std::vector<double> test;
    for (const auto& mi : m) test.push_back(mi["grid"][chosen]["test_accuracy"]);
    // A choice at an end of the grid's range says the grid may be too narrow for this data.
    json edges = json::array();
    for (const char* key : {"lr", "epoch"}) {
      double lo = grid[0][key], hi = lo;
      for (const auto& row : grid) {
        lo = std::min(lo, row[key].get<double>());
        hi = std::max(hi, row[key].get<double>());
      }
      const double v = grid[chosen][key];
      if (lo < hi && (v == lo || v == hi)) {
        edges.push_back(
            fmt::format("{}={} is the grid's {}", key, grid[chosen][key].dump(), v == lo ? "lowest" : "highest"));
      }
    }
    return {{"at_grid_edge", edges},
            {"settings", settings},
            {"valid_accuracy_by_setting", valid_by},
            {"chosen_setting", settings[chosen]},
            {"runs", dirs},
            {"train_examples", m[0]["train_examples"]},
            {"valid_examples", m[0]["valid_examples"]},
            {"test_accuracy", test},
            {"summary", to_json(summarize(test))}};
  }

  // A model's test accuracy per seed against fastText's, paired over seeds, and McNemar's exact
  // test per seed on the items both scored: files[s] holds the model's per-item probabilities
  // under `probs_name`.
  json against_fasttext(const std::string& task, const std::string& model, const json& accuracy,
                        const std::vector<std::string>& files, const std::string& probs_name,
                        const json& fasttext) const {
    json mcnemar = json::array();
    for (size_t s = 0; s < files.size(); ++s) {
      const Predictions pm = load_predictions((fs::path(out_) / files[s]).string());
      const std::string ft_file =
          (fs::path(out_) / fasttext["runs"][s].get<std::string>() / "test_predictions.safetensors").string();
      const Predictions pf = load_predictions(ft_file);
      TLM_CHECK(pm.items == pf.items, "{} and {}: not the same test items", files[s], ft_file);
      mcnemar.push_back(mcnemar_row(s, pm.correct(probs_name), pf.correct(fasttext["chosen_setting"]),
                                    "model_right_fasttext_wrong", "fasttext_right_model_wrong"));
    }
    return {{"task", task},
            {"model", model},
            {"test_accuracy", accuracy},
            {"summary", to_json(summarize(accuracy.get<std::vector<double>>()))},
            {"fasttext", fasttext},
            {"difference", paired_difference(accuracy, fasttext["test_accuracy"])},
            {"mcnemar", mcnemar}};
  }

  // McNemar's exact test of seed index s from two models' per-item correctness on the same items:
  // the counts of items only one got right, under the given keys, and p.
  json mcnemar_row(size_t s, const std::vector<char>& a_ok, const std::vector<char>& b_ok, const char* only_a,
                   const char* only_b) const {
    int64_t a = 0, b = 0;
    for (size_t i = 0; i < a_ok.size(); ++i) {
      a += a_ok[i] && !b_ok[i];
      b += b_ok[i] && !a_ok[i];
    }
    return {{"seed", runs_.roles.value("first_seed", 1) + static_cast<int>(s)},
            {only_a, a},
            {only_b, b},
            {"p", mcnemar_exact_p(a, b)}};
  }

  // Per seed, a[s] - b[s], summarized with its verdict.
  static json paired_difference(const json& a, const json& b) {
    std::vector<double> d;
    for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) d.push_back(a[s].get<double>() - b[s].get<double>());
    const Summary sum = summarize(d);
    return {{"per_seed", d}, {"summary", to_json(sum)}, {"verdict", verdict(sum)}};
  }
  static json gap(const json& pretrained, const json& scratch) {
    return paired_difference(pretrained["test_accuracy"], scratch["test_accuracy"]);
  }
  // Does the gap grow from `earlier` to `later`?
  static json trend(const json& earlier, const json& later) {
    return paired_difference(later["per_seed"], earlier["per_seed"]);
  }

  json pretraining() const {
    json rows = json::array();
    for (const auto& i : runs_.roles["pretrain"]) {
      const Job& j = job(i);
      const json m = metrics(i);
      json row = j.tags;
      row["run"] = j.dir;
      row["steps"] = m["steps"];
      row["train_sequences"] = m["train_sequences"];
      if (m.contains("final")) {
        row["valid_mlm_loss"] = m["final"].value("valid_mlm_loss", json(nullptr));
        row["unigram_loss"] = m["final"].value("unigram_loss", json(nullptr));
      }
      row["tokens"] = m["totals"]["tokens"];
      row["flops"] = m["totals"]["flops"];
      rows.push_back(row);
    }
    return rows;
  }

  json e1() const {
    json rows = json::array();
    for (const auto& r : runs_.roles["e1"]) {
      const json pre = arm(r["pretrained"]), scr = arm(r["scratch"]);
      json row = {{"task", r["task"]}, {"arch", r["arch"]}, {"pretrain_run", job(r["pretrain"]).dir},
                  {"pretrained", pre}, {"scratch", scr},    {"gap", gap(pre, scr)}};
      if (r.contains("fasttext")) row["fasttext"] = fasttext_arm(r["fasttext"]);
      rows.push_back(row);
    }
    return rows;
  }

  // One pre-training setting against the scratch arm: its MLM losses, its arm and the gap.
  json setting(const json& pretrain, const json& runs, const json& scratch) const {
    const json pre = arm(runs);
    const json m = metrics(pretrain);
    return {{"pretrain_run", job(pretrain).dir},
            {"pretrain_tokens", m["totals"]["tokens"]},
            {"valid_mlm_loss", m["final"].value("valid_mlm_loss", json(nullptr))},
            {"unigram_loss", m["final"].value("unigram_loss", json(nullptr))},
            {"pretrained", pre},
            {"gap", gap(pre, scratch)}};
  }

  // One E2 curve ([e2], or one table of [[e2]]).
  json e2(const json& r) const {
    const json scr = arm(r["scratch"]);
    json sizes = json::array();
    for (const auto& s : r["sizes"]) {
      json row = setting(s["pretrain"], s["runs"], scr);
      row["sequences"] = s["sequences"];
      if (s.contains("epochs")) row["epochs"] = s["epochs"];
      sizes.push_back(row);
    }
    json out = {{"task", r["task"]}, {"arch", r["arch"]}, {"scratch", scr}, {"sizes", sizes}};
    if (sizes.size() >= 2) out["trend"] = trend(sizes.front()["gap"], sizes.back()["gap"]);
    return out;
  }

  json e3() const {
    const json& r = runs_.roles["e3"];
    const json scr = arm(r["scratch"]);
    json rows = json::array();
    for (const auto& c : r["corpora"]) {
      const json ov = read_json(job(c["overlap"]), "overlap.json");
      json row = setting(c["pretrain"], c["runs"], scr);
      row["corpus"] = c["corpus"];
      row["overlap"] = {{"token_occurrence", ov["token_occurrence_overlap"]},
                        {"token_type", ov["token_type_overlap"]},
                        {"word_type", ov["word_type_overlap"]},
                        {"word_occurrence", ov["word_occurrence_overlap"]}};
      rows.push_back(row);
    }
    // Ordered by overlap (share of the task's word-piece occurrences the corpus contains).
    std::sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
      return a["overlap"]["token_occurrence"].get<double>() < b["overlap"]["token_occurrence"].get<double>();
    });
    json out = {{"task", r["task"]},
                {"arch", r["arch"]},
                {"sequences", r["sequences"]},
                {"overlap_measure", "token_occurrence"},
                {"scratch", scr},
                {"corpora", rows}};
    if (rows.size() >= 2) out["trend"] = trend(rows.front()["gap"], rows.back()["gap"]);
    return out;
  }

  json e4() const {
    const json& r = runs_.roles["e4"];
    json members = json::array();
    for (const auto& m : r["members"]) {
      json a = arm(m["runs"]);
      a["pretrain_run"] = job(m["pretrain"]).dir;
      members.push_back(a);
    }
    json deep = arm(r["deep"]["runs"]);
    deep["pretrain_run"] = job(r["deep"]["pretrain"]).dir;
    json committee = {{"runs", json::array()},
                      {"test_accuracy", json::array()},
                      {"majority_vote_accuracy", json::array()},
                      {"by_size", json::array()}};
    json mcnemar = json::array(), per_seed_difference = json::array();
    std::vector<double> diffs;
    int64_t examples = 0;
    for (size_t s = 0; s < r["committees"].size(); ++s) {
      const Job& cj = job(r["committees"][s]);
      const json ev = read_json(cj, "eval.json");
      // The committee of seed s is scored on the very test sample its members were.
      for (size_t i = 0; i < members.size(); ++i) {
        const double own = members[i]["test_accuracy"][s], there = ev["members"][i]["accuracy"];
        TLM_CHECK(std::abs(own - there) < 1e-9,
                  "{}: member {} scores {} there and {} in its own run: not the same test sample", cj.dir, i + 1, there,
                  own);
      }
      const double pc = ev["committee"]["accuracy"], pd = deep["test_accuracy"][s];
      committee["runs"].push_back(cj.dir);
      committee["test_accuracy"].push_back(pc);
      committee["majority_vote_accuracy"].push_back(ev["majority_vote"]["accuracy"]);
      committee["by_size"].push_back(ev["by_size"]);
      diffs.push_back(pc - pd);
      examples = ev["examples"];
      // McNemar's exact test on the items both were scored on, in the same order.
      const Predictions pc_items = load_predictions((fs::path(out_) / cj.dir / "predictions.safetensors").string());
      const std::string deep_file =
          (fs::path(out_) / deep["runs"][s].get<std::string>() / "test_predictions.safetensors").string();
      const Predictions pd_items = load_predictions(deep_file);
      TLM_CHECK(pc_items.items == pd_items.items, "{} and {}: not the same test items", cj.dir, deep_file);
      mcnemar.push_back(mcnemar_row(s, pc_items.correct("committee"), pd_items.correct("model"),
                                    "committee_right_deep_wrong", "deep_right_committee_wrong"));
    }
    committee["summary"] = to_json(summarize(committee["test_accuracy"].get<std::vector<double>>()));
    const Summary d = summarize(diffs);
    const json lat = read_json(job(r["latency"]), "latency.json");
    json out = {{"task", r["task"]},
                {"member_arch", r["member_arch"]},
                {"deep_arch", r["deep_arch"]},
                {"members", members},
                {"deep", deep},
                {"committee", committee},
                {"test_examples", examples},
                {"difference", {{"per_seed", diffs}, {"summary", to_json(d)}}},
                {"mcnemar", mcnemar},
                {"latency", lat}};
    if (r.contains("fasttext")) out["fasttext"] = fasttext_arm(r["fasttext"]);
    return out;
  }

  // Does a pre-trained tiny model, or the committee, beat fastText on the same examples? One row
  // per E1 setting (its pre-trained arm) and for E4's committee.
  json fasttext_comparison(const json& r) const {
    json rows = json::array();
    auto arm_files = [](const json& arm) {
      std::vector<std::string> f;
      for (const auto& d : arm["runs"]) f.push_back(d.get<std::string>() + "/test_predictions.safetensors");
      return f;
    };
    for (const auto& row : r.value("e1", json::array())) {
      if (!row.contains("fasttext")) continue;
      rows.push_back(against_fasttext(row["task"], "pre-trained " + row["arch"].get<std::string>(),
                                      row["pretrained"]["test_accuracy"], arm_files(row["pretrained"]), "model",
                                      row["fasttext"]));
    }
    if (r.contains("e4") && r["e4"].contains("fasttext")) {
      const json& e = r["e4"];
      std::vector<std::string> files;
      for (const auto& d : e["committee"]["runs"]) files.push_back(d.get<std::string>() + "/predictions.safetensors");
      rows.push_back(against_fasttext(
          e["task"], fmt::format("soft committee of {} {}", e["members"].size(), e["member_arch"].get<std::string>()),
          e["committee"]["test_accuracy"], files, "committee", e["fasttext"]));
    }
    return rows;
  }

  const PlanRuns& runs_;
  std::string out_;
};

// The E2 curves of a results object: [e2] gives one, [[e2]] several.
std::vector<json> e2_parts(const json& r) {
  if (!r.contains("e2")) return {};
  if (r["e2"].is_array()) return r["e2"].get<std::vector<json>>();
  return {r["e2"]};
}

// A count in words for evidence: 6.7M, 53.4M.
std::string si_count(double v) {
  return v >= 1e6   ? fmt::format("{:.1f}M", v / 1e6)
         : v >= 1e3 ? fmt::format("{:.1f}k", v / 1e3)
                    : fmt::format("{:.0f}", v);
}

// What the intervals of a finding cover when the seeds share their pre-trained models.
std::string pretraining_caveat(const json& plan) {
  return plan.value("pretrain_per_seed", false)
             ? ""
             : "; one pre-training run per setting, so the intervals cover fine-tuning seeds only";
}

json f1(const json& r) {
  int held = 0, failed = 0;
  std::string detail;
  for (const auto& row : r["e1"]) {
    const std::string v = row["gap"]["verdict"];
    held += v == "held";
    failed += v == "did not hold";
    detail += fmt::format("{}{} {}: {} points ({})", detail.empty() ? "" : "; ", row["task"].get<std::string>(),
                          row["arch"].get<std::string>(), interval(row["gap"]["summary"]), v);
  }
  const int n = static_cast<int>(r["e1"].size());
  const std::string v = rollup(held, failed, n);
  return {{"id", "F1"},
          {"claim", "pre-trained tiny models beat the same architecture trained from scratch"},
          {"verdict", v},
          {"evidence", fmt::format("gap (pre-trained minus scratch, test accuracy, paired over seeds, 95% CI) above "
                                   "zero in {} of {} settings, below in {}: {}{}",
                                   held, n, failed, detail, pretraining_caveat(r["plan"]))}};
}

json f5(const json& rows) {
  int held = 0, failed = 0;
  std::string detail;
  for (const auto& row : rows) {
    const std::string v = row["difference"]["verdict"];
    held += v == "held";
    failed += v == "did not hold";
    detail += fmt::format("{}{} {}: {} points ({})", detail.empty() ? "" : "; ", row["task"].get<std::string>(),
                          row["model"].get<std::string>(), interval(row["difference"]["summary"]), v);
  }
  const int n = static_cast<int>(rows.size());
  return {{"id", "F5"},
          {"claim", "a pre-trained tiny model or a soft committee beats a tuned fastText trained on the same examples"},
          {"verdict", rollup(held, failed, n)},
          {"evidence", fmt::format("model minus fastText (test accuracy, paired over seeds, both on each seed's "
                                   "training sample, each choosing its settings on the same validation split, 95% CI) "
                                   "above zero in {} of {} comparisons, below in {}: {}",
                                   held, n, failed, detail)}};
}

// A ratio of latency.json's comparison as "1.23x [1.10, 1.40]".
std::string ratio_words(const json& ratio) {
  return fmt::format("{:.2f}x [{}]", ratio["geometric_mean"].get<double>(),
                     ratio["ci95"].is_null() ? "no interval"
                                             : fmt::format("{:.2f}, {:.2f}", ratio["ci95"][0].get<double>(),
                                                           ratio["ci95"][1].get<double>()));
}

json f4(const json& e) {
  const json& d = e["difference"]["summary"];
  Summary diff;
  diff.n = d["n"];
  diff.mean = d["mean"];
  diff.has_interval = !d["ci95"].is_null();
  diff.ci_low = diff.has_interval ? d["ci95"][0].get<double>() : diff.mean;
  diff.ci_high = diff.has_interval ? d["ci95"][1].get<double>() : diff.mean;
  // Latency: the committee with its members side by side (the paper's premise) where the cores
  // allow, else one after another, against the deep model, over interleaved rounds.
  const json& cmp = e["latency"]["comparison"];
  const std::string mode = cmp["ratios"].contains("committee_concurrent/reference") ? "concurrent" : "sequential";
  const json& ratio = cmp["ratios"]["committee_" + mode + "/reference"];
  const bool ratio_has = !ratio["ci95"].is_null();
  const double ratio_ci[2] = {ratio_has ? ratio["ci95"][0].get<double>() : 0,
                              ratio_has ? ratio["ci95"][1].get<double>() : 0};
  const CommitteeVerdict cv = committee_verdict(diff, ratio_has ? ratio_ci : nullptr);
  const std::string accuracy_words =
      diff.has_interval && diff.ci_low > 0 ? "significantly better"
      : cv.accuracy == "matches"           ? fmt::format("within {:.0f} points or better", 100 * kMatchMargin)
      : cv.accuracy == "worse"             ? "significantly worse"
                               : fmt::format("too uncertain to tell a match within {:.0f} points", 100 * kMatchMargin);
  std::string p_values;
  for (const auto& m : e["mcnemar"])
    p_values += fmt::format("{}{:.3g}", p_values.empty() ? "" : ", ", m["p"].get<double>());
  const std::string side_by_side = mode == "concurrent"
                                       ? fmt::format("members side by side, {} of {} at once",
                                                     cmp["members_side_by_side"].get<int>(), cmp["members"].get<int>())
                                       : "members one after another";
  const std::string member_key = "committee_" + mode + "/member";
  const std::string over_member =
      cmp["ratios"].contains(member_key)
          ? fmt::format("; over one member alone: {}", ratio_words(cmp["ratios"][member_key]))
          : std::string();
  return {
      {"id", "F4"},
      {"claim", fmt::format("a soft committee of one-layer models matches a deep model's accuracy (within {:.0f} "
                            "points) and answers a single text no slower than it (within {:.0f}%)",
                            100 * kMatchMargin, 100 * (kLatencyMargin - 1))},
      {"verdict", cv.verdict},
      {"evidence",
       fmt::format("committee of {} {} models {} vs the {} model {} (mean over seeds); committee minus deep, paired "
                   "over seeds, 95% CI: {} points, {}; McNemar per seed p = {}; single-text latency of the committee "
                   "({}) over the deep model's: {} over {} interleaved rounds on {} threads: {} (as fast needs the "
                   "upper bound <= {:.2f}, slower a lower bound above it){}; one pre-training run per member and for "
                   "the deep model, so the accuracy interval covers fine-tuning seeds only",
                   e["members"].size(), e["member_arch"].get<std::string>(), percent(e["committee"]["summary"]["mean"]),
                   e["deep_arch"].get<std::string>(), percent(e["deep"]["summary"]["mean"]), interval(d),
                   accuracy_words, p_values, side_by_side, ratio_words(ratio), cmp["rounds"].get<int>(),
                   cmp["threads"].get<int>(), cv.latency, kLatencyMargin, over_member)}};
}

// The findings in words (the paper's four, and F5 against fastText), from the experiments' verdicts.
json findings(const json& r) {
  json f = json::array();
  if (r.contains("e1")) f.push_back(f1(r));
  if (r.contains("e2")) {
    // One curve, or several ([[e2]]) rolled up as F1's settings.
    int held = 0, failed = 0, n = 0;
    std::string detail;
    for (const auto& e : e2_parts(r)) {
      if (!e.contains("trend")) continue;
      const std::string v = e["trend"]["verdict"];
      held += v == "held";
      failed += v == "did not hold";
      ++n;
      detail += fmt::format("{}{}gap at {} tokens minus gap at {} tokens, paired over seeds: {} points{}",
                            detail.empty() ? "" : "; ", r["e2"].is_array() ? e["task"].get<std::string>() + ": " : "",
                            si_count(e["sizes"].back()["pretrain_tokens"].get<double>()),
                            si_count(e["sizes"].front()["pretrain_tokens"].get<double>()),
                            interval(e["trend"]["summary"]), r["e2"].is_array() ? " (" + v + ")" : "");
    }
    if (n > 0) {
      f.push_back({{"id", "F2"},
                   {"claim", "the gap grows with the size of the pre-training set"},
                   {"verdict", r["e2"].is_array() ? rollup(held, failed, n)
                                                  : e2_parts(r)[0]["trend"]["verdict"].get<std::string>()},
                   {"evidence", detail + pretraining_caveat(r["plan"])}});
    }
  }
  if (r.contains("e3") && r["e3"].contains("trend")) {
    const auto& e = r["e3"];
    f.push_back(
        {{"id", "F3"},
         {"claim", "the gap grows with the token overlap between pre-training corpus and task"},
         {"verdict", e["trend"]["verdict"]},
         {"evidence",
          fmt::format("gap with {} (overlap {}) minus gap with {} (overlap {}), paired over seeds: {} points; the "
                      "corpora differ in more than overlap (style, size of the domain), so this is a correlation{}",
                      e["corpora"].back()["corpus"].get<std::string>(),
                      percent(e["corpora"].back()["overlap"]["token_occurrence"]),
                      e["corpora"].front()["corpus"].get<std::string>(),
                      percent(e["corpora"].front()["overlap"]["token_occurrence"]), interval(e["trend"]["summary"]),
                      pretraining_caveat(r["plan"]))}});
  }
  if (r.contains("e4")) f.push_back(f4(r["e4"]));
  if (r.contains("fasttext") && !r["fasttext"].empty()) f.push_back(f5(r["fasttext"]));
  return f;
}

json collect(const PlanRuns& runs, const json& plan, const std::string& out, const json& manifest) {
  Collector c(runs, out);
  json r = {{"format", "tlm-reproduce-results"}, {"version", 1}, {"plan", plan}, {"manifest", manifest}};
  r["seeds"] = runs.roles["seeds"];
  r["first_seed"] = runs.roles.value("first_seed", 1);
  r["lrs"] = runs.roles["lrs"];
  r["pretraining"] = c.pretraining();
  if (runs.roles.contains("e1")) r["e1"] = c.e1();
  if (runs.roles.contains("e2")) {
    const json& e2 = runs.roles["e2"];
    if (e2.is_array()) {
      r["e2"] = json::array();
      for (const auto& part : e2) r["e2"].push_back(c.e2(part));
    } else {
      r["e2"] = c.e2(e2);
    }
  }
  if (runs.roles.contains("e3")) r["e3"] = c.e3();
  if (runs.roles.contains("e4")) r["e4"] = c.e4();
  if (json rows = c.fasttext_comparison(r); !rows.empty()) r["fasttext"] = rows;
  if (runs.roles.contains("decontamination")) {
    r["decontamination"] = json::object();
    for (const auto& [name, id] : runs.roles["decontamination"].items()) {
      r["decontamination"][name] = c.read_json(runs.graph.at(id.get<int>()), "clean.json");
    }
  }
  r["findings"] = findings(r);
  json list = json::array();
  double wall = 0, flops = 0;
  for (const auto& j : runs.graph.jobs()) {
    const RunRecord rec = read_run_record(out, j);
    json row = {{"id", j.id},
                {"kind", j.kind},
                {"title", j.title},
                {"dir", j.dir},
                {"wall_seconds", rec.wall_seconds},
                {"attempts", rec.attempts}};
    if (j.trainer) {
      const json m = c.read_json(j, "metrics.json");
      row["tokens"] = m["totals"]["tokens"];
      row["flops"] = m["totals"]["flops"];
      row["steps"] = m["steps"];
      flops += m["totals"]["flops"].get<double>();
    }
    wall += rec.wall_seconds;
    list.push_back(row);
  }
  r["runs"] = list;
  r["totals"] = {{"runs", list.size()}, {"run_wall_seconds", wall}, {"training_flops", flops}};
  return r;
}

}  // namespace

json collect_results(const PlanRuns& runs, const json& plan, const std::string& out, const json& manifest) {
  try {
    return collect(runs, plan, out, manifest);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: a run's files are not what tlm wrote ({}); rerun that run", out, e.what()));
  }
}

}  // namespace tlm::experiment
