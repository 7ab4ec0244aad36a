#include "experiment/results.h"

#include <cmath>
#include <filesystem>

#include "experiment/runner.h"
#include "experiment/stats.h"
#include "tlm/check.h"
#include "tlm/file_io.h"

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
    std::vector<std::vector<double>> curves;
    for (const auto& i : runs[chosen]) {
      const json m = metrics(i);
      test.push_back(m["test"]["accuracy"]);
      std::vector<double> curve;
      for (const auto& h : m["history"]) {
        if (h.contains("test_accuracy")) curve.push_back(h["test_accuracy"]);
      }
      curves.push_back(curve);
    }
    out["test_accuracy"] = test;
    out["summary"] = to_json(summarize(test));
    json curve_mean = json::array(), curve_std = json::array();
    for (size_t e = 0; !curves.empty() && e < curves[0].size(); ++e) {
      std::vector<double> at;
      for (const auto& c : curves) {
        if (e < c.size()) at.push_back(c[e]);
      }
      const Summary s = summarize(at);
      curve_mean.push_back(s.mean);
      curve_std.push_back(s.std);
    }
    out["curve"] = {{"test_accuracy_mean", curve_mean}, {"test_accuracy_std", curve_std}};
    return out;
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
      rows.push_back({{"task", r["task"]},
                      {"arch", r["arch"]},
                      {"pretrain_run", job(r["pretrain"]).dir},
                      {"pretrained", pre},
                      {"scratch", scr},
                      {"gap", gap(pre, scr)}});
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

  json e2() const {
    const json& r = runs_.roles["e2"];
    const json scr = arm(r["scratch"]);
    json sizes = json::array();
    for (const auto& s : r["sizes"]) {
      json row = setting(s["pretrain"], s["runs"], scr);
      row["sequences"] = s["sequences"];
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

  json chosen_run(const json& runs) const {
    std::vector<std::vector<std::string>> grid;
    for (const auto& i : runs) grid.push_back({job(i).dir});
    const int c = choose_lr(out_, grid);
    const json m = metrics(runs[c]);
    return {{"run", grid[c][0]},
            {"lr", runs_.roles["lrs"][c]},
            {"test_accuracy", m["test"]["accuracy"]},
            {"valid_accuracy", m["final"].value("valid_accuracy", json(nullptr))}};
  }

  json e4() const {
    const json& r = runs_.roles["e4"];
    json members = json::array();
    for (const auto& m : r["members"]) members.push_back(chosen_run(m["runs"]));
    const json deep = chosen_run(r["deep"]["runs"]);
    const json ev = read_json(job(r["committee"]), "eval.json");
    // The committee must have been scored on the very test sample its members were.
    double worst = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      worst = std::max(
          worst, std::abs(ev["members"][i]["accuracy"].get<double>() - members[i]["test_accuracy"].get<double>()));
    }
    TLM_CHECK(worst < 1e-9,
              "{}: the committee's members score {} differently than in their own runs: not the same "
              "test sample",
              job(r["committee"]).dir, worst);
    const int64_t n = ev["examples"];
    const double pc = ev["committee"]["accuracy"], pd = deep["test_accuracy"];
    const double se = std::sqrt(pc * (1 - pc) / n + pd * (1 - pd) / n);
    const json lat_deep = read_json(job(r["latency_deep"]), "latency.json");
    const json lat_comm = read_json(job(r["latency_committee"]), "latency.json");
    json out = {{"task", r["task"]},
                {"member_arch", r["member_arch"]},
                {"deep_arch", r["deep_arch"]},
                {"members", members},
                {"deep", deep},
                {"test_examples", n},
                {"committee_accuracy", pc},
                {"majority_vote_accuracy", ev["majority_vote"]["accuracy"]},
                {"by_size", ev["by_size"]},
                {"difference",
                 {{"committee_minus_deep", pc - pd}, {"se", se}, {"ci95", {pc - pd - 1.96 * se, pc - pd + 1.96 * se}}}},
                {"latency", {{"deep", lat_deep}, {"committee", lat_comm}}}};
    return out;
  }

  const PlanRuns& runs_;
  std::string out_;
};

std::string pct(double v) { return fmt::format("{:.1f}%", 100 * v); }
std::string pts(double v) { return fmt::format("{:+.1f}", 100 * v); }

// F4: the committee matches the deep model when the 95% interval of (committee - deep) accuracy
// lies above -2 points.
constexpr double kMatchMargin = 0.02;

// The four findings in words, from the experiments' verdicts.
json findings(const json& r) {
  json f = json::array();
  if (r.contains("e1")) {
    int held = 0, failed = 0;
    std::string detail;
    for (const auto& row : r["e1"]) {
      const std::string v = row["gap"]["verdict"];
      held += v == "held";
      failed += v == "did not hold";
      const auto& s = row["gap"]["summary"];
      detail +=
          fmt::format("{}{} {}: {} points [{}, {}] ({})", detail.empty() ? "" : "; ", row["task"].get<std::string>(),
                      row["arch"].get<std::string>(), pts(s["mean"]), pts(s["ci95"][0]), pts(s["ci95"][1]), v);
    }
    const int n = static_cast<int>(r["e1"].size());
    const std::string v = held == n     ? "held"
                          : failed == n ? "did not hold"
                          : held > 0    ? "held in part"
                          : failed > 0  ? "did not hold in part"
                                        : "inconclusive";
    f.push_back(
        {{"id", "F1"},
         {"claim", "pre-trained tiny models beat the same architecture trained from scratch"},
         {"verdict", v},
         {"evidence", fmt::format("gap (pre-trained minus scratch, test accuracy, paired over seeds, 95% CI) in "
                                  "{} of {} settings above zero: {}",
                                  held, n, detail)}});
  }
  if (r.contains("e2") && r["e2"].contains("trend")) {
    const auto& e = r["e2"];
    const auto& t = e["trend"]["summary"];
    f.push_back({{"id", "F2"},
                 {"claim", "the gap grows with the size of the pre-training set"},
                 {"verdict", e["trend"]["verdict"]},
                 {"evidence", fmt::format("gap at {} sequences minus gap at {} sequences: {} points [{}, {}]",
                                          e["sizes"].back()["sequences"].get<int64_t>(),
                                          e["sizes"].front()["sequences"].get<int64_t>(), pts(t["mean"]),
                                          pts(t["ci95"][0]), pts(t["ci95"][1]))}});
  }
  if (r.contains("e3") && r["e3"].contains("trend")) {
    const auto& e = r["e3"];
    const auto& t = e["trend"]["summary"];
    f.push_back(
        {{"id", "F3"},
         {"claim", "the gap grows with the token overlap between pre-training corpus and task"},
         {"verdict", e["trend"]["verdict"]},
         {"evidence",
          fmt::format("gap with {} (overlap {}) minus gap with {} (overlap {}): {} points [{}, {}]; the corpora "
                      "differ in more than overlap (style, size of the domain), so this is a correlation",
                      e["corpora"].back()["corpus"].get<std::string>(),
                      pct(e["corpora"].back()["overlap"]["token_occurrence"]),
                      e["corpora"].front()["corpus"].get<std::string>(),
                      pct(e["corpora"].front()["overlap"]["token_occurrence"]), pts(t["mean"]), pts(t["ci95"][0]),
                      pts(t["ci95"][1]))}});
  }
  if (r.contains("e4")) {
    const auto& e = r["e4"];
    const auto& d = e["difference"];
    // "Matches" needs evidence: the interval must exclude a loss of more than the margin; an
    // interval too wide to tell is inconclusive, not a match.
    const double lo = d["ci95"][0], hi = d["ci95"][1];
    const std::string accuracy = lo >= -kMatchMargin ? "matches" : hi < 0 ? "worse" : "unclear";
    const std::string accuracy_words =
        lo > 0                  ? "significantly better"
        : accuracy == "matches" ? fmt::format("within {:.0f} points or better", 100 * kMatchMargin)
        : accuracy == "worse"   ? "significantly worse"
                                : fmt::format("too uncertain to tell a match within {:.0f} points", 100 * kMatchMargin);
    const double deep_ms = e["latency"]["deep"]["sequential"]["single"]["p50_ms"];
    double comm_ms = e["latency"]["committee"]["sequential"]["single"]["p50_ms"];
    std::string mode = "sequential";
    if (e["latency"]["committee"].contains("concurrent")) {
      const double c = e["latency"]["committee"]["concurrent"]["single"]["p50_ms"];
      if (c < comm_ms) comm_ms = c, mode = "concurrent";
    }
    const bool faster = comm_ms <= deep_ms;
    const std::string v = accuracy == "worse" || !faster    ? "did not hold"
                          : accuracy == "matches" && faster ? "held"
                                                            : "inconclusive";
    f.push_back(
        {{"id", "F4"},
         {"claim", "a soft committee of one-layer models matches a deep model at the latency of one layer"},
         {"verdict", v},
         {"evidence",
          fmt::format("committee of {} {} models: {} vs the {} model: {} (difference {} points, 95% CI [{}, {}]: {}); "
                      "single-text latency p50 {:.3f} ms ({} members) vs {:.3f} ms ({})",
                      e["members"].size(), e["member_arch"].get<std::string>(), pct(e["committee_accuracy"]),
                      e["deep_arch"].get<std::string>(), pct(e["deep"]["test_accuracy"]),
                      pts(d["committee_minus_deep"]), pts(d["ci95"][0]), pts(d["ci95"][1]), accuracy_words, comm_ms,
                      mode, deep_ms, faster ? "the committee is as fast or faster" : "the committee is slower")}});
  }
  return f;
}

json collect(const PlanRuns& runs, const json& plan, const std::string& out, const json& manifest) {
  Collector c(runs, out);
  json r = {{"format", "tlm-reproduce-results"}, {"version", 1}, {"plan", plan}, {"manifest", manifest}};
  r["seeds"] = runs.roles["seeds"];
  r["lrs"] = runs.roles["lrs"];
  r["pretraining"] = c.pretraining();
  if (runs.roles.contains("e1")) r["e1"] = c.e1();
  if (runs.roles.contains("e2")) r["e2"] = c.e2();
  if (runs.roles.contains("e3")) r["e3"] = c.e3();
  if (runs.roles.contains("e4")) r["e4"] = c.e4();
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
