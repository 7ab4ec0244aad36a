// Experiment plans (presets, scaling, expansion into runs), statistics and SVG plots.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "experiment/job_processes.h"
#include "experiment/plan.h"
#include "experiment/plan_check.h"
#include "experiment/svg.h"
#include "experiment/verdict.h"
#include "temp_dir.h"
#include "tlm/file_io.h"
#include "tlm/job_config.h"

namespace tlm::experiment {
namespace {

using nlohmann::json;

TEST(Runner, PlainCudaSpreadsRunsOverTheGpus) {
  std::vector<int> load(3, 0);  // a machine of three GPUs
  EXPECT_EQ(experiment::spread_device("cuda", load), "cuda:0");
  EXPECT_EQ(experiment::spread_device("cuda", load), "cuda:1");
  EXPECT_EQ(experiment::spread_device("cuda", load), "cuda:2");
  --load[1];  // the run on cuda:1 ended
  EXPECT_EQ(experiment::spread_device("cuda", load), "cuda:1");
  EXPECT_EQ(experiment::spread_device("cuda", load), "cuda:0");  // all equal again: the lowest index
  EXPECT_EQ(load, (std::vector<int>{2, 1, 1}));
  // a device named by the user, the CPU, or one GPU: as given, the counts untouched
  for (const std::string given : {"cuda:2", "cpu"}) EXPECT_EQ(experiment::spread_device(given, load), given);
  std::vector<int> one(1, 0);
  EXPECT_EQ(experiment::spread_device("cuda", one), "cuda");
  EXPECT_EQ(load, (std::vector<int>{2, 1, 1}));
  EXPECT_EQ(one, std::vector<int>{0});
}

TEST(Stats, MeanStdAndStudentInterval) {
  const Summary s = summarize({1.0, 2.0, 3.0});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.std, 1.0);
  // t(0.975, 2) in closed form: (2p - 1) / sqrt(2 p (1 - p)) with p = 0.975.
  const double t2 = 0.95 / std::sqrt(2 * 0.975 * 0.025);
  const double half = t2 / std::sqrt(3.0);
  EXPECT_NEAR(s.ci_low, 2.0 - half, 1e-9);
  EXPECT_NEAR(s.ci_high, 2.0 + half, 1e-9);
  // t(0.975, 1) = tan(0.475 pi); the others are qt(0.975, df) from mpmath (30 digits), to 9 digits.
  EXPECT_NEAR(t_quantile_95(1), std::tan(0.475 * M_PI), 1e-8);
  EXPECT_NEAR(t_quantile_95(30), 2.042272456, 1e-8);
  EXPECT_NEAR(t_quantile_95(40), 2.021075390, 1e-8);  // beyond any table: no linear interpolation
  EXPECT_NEAR(t_quantile_95(1000), 1.962339081, 1e-8);
  EXPECT_NEAR(t_two_sided_p(t2, 2), 0.05, 1e-12);
  EXPECT_THROW(t_quantile_95(0), Error);
}

TEST(Stats, OneValueHasNoIntervalAndNoVerdict) {
  const Summary s = summarize({0.25});
  EXPECT_EQ(s.std, 0.0);
  EXPECT_EQ(s.ci_low, 0.25);
  EXPECT_EQ(verdict(s), "inconclusive");  // a single seed never decides a finding
}

TEST(Stats, VerdictFollowsTheInterval) {
  EXPECT_EQ(verdict(summarize({0.05, 0.06, 0.07})), "held");
  EXPECT_EQ(verdict(summarize({-0.05, -0.06, -0.07})), "did not hold");
  EXPECT_EQ(verdict(summarize({-0.05, 0.06, 0.01})), "inconclusive");
}

// Every seed giving the same difference is reported as such, never as a zero-width interval that
// would decide a finding.
TEST(Stats, IdenticalValuesHaveNoInterval) {
  const Summary s = summarize({0.04, 0.04, 0.04});
  EXPECT_FALSE(s.has_interval);
  EXPECT_EQ(verdict(s), "inconclusive");
  const json j = to_json(s);
  EXPECT_TRUE(j["ci95"].is_null());
  EXPECT_NE(j["note"].get<std::string>().find("the same value for every seed"), std::string::npos);
  EXPECT_TRUE(summarize({0.04, 0.05}).has_interval);
}

TEST(Verdicts, F1RollUpIsMixedWhenSettingsDisagreeSignificantly) {
  EXPECT_EQ(rollup(3, 0, 3), "held");
  EXPECT_EQ(rollup(0, 3, 3), "did not hold");
  EXPECT_EQ(rollup(1, 1, 3), "mixed");  // not "held in part": another setting significantly did not
  EXPECT_EQ(rollup(1, 0, 3), "held in part");
  EXPECT_EQ(rollup(0, 1, 3), "did not hold in part");
  EXPECT_EQ(rollup(0, 0, 3), "inconclusive");
}

Summary interval_of(double low, double high) {
  Summary s;
  s.n = 3;
  s.mean = (low + high) / 2;
  s.has_interval = true;
  s.ci_low = low;
  s.ci_high = high;
  return s;
}

TEST(Verdicts, F4NeedsAMatchAndTheUpperLatencyBound) {
  const double fast[2] = {0.95, 1.08}, unsure[2] = {1.02, 1.15}, slow[2] = {1.12, 1.30};
  EXPECT_EQ(committee_verdict(interval_of(-0.015, 0.03), fast).verdict, "held");
  // A match within 2 points needs the lower bound at -2 or above; one below is unclear.
  EXPECT_EQ(committee_verdict(interval_of(-0.025, 0.03), fast).accuracy, "unclear");
  EXPECT_EQ(committee_verdict(interval_of(-0.025, 0.03), fast).verdict, "inconclusive");
  EXPECT_EQ(committee_verdict(interval_of(-0.08, -0.01), fast).verdict, "did not hold");
  // Latency: an interval crossing 1.10 is "not shown"; entirely above it, "slower".
  EXPECT_EQ(committee_verdict(interval_of(-0.01, 0.03), unsure).latency, "not shown");
  EXPECT_EQ(committee_verdict(interval_of(-0.01, 0.03), unsure).verdict, "inconclusive");
  EXPECT_EQ(committee_verdict(interval_of(-0.01, 0.03), slow).verdict, "did not hold");
  EXPECT_EQ(committee_verdict(interval_of(-0.01, 0.03), nullptr).latency, "not shown");
  // Identical differences over seeds: no interval, so no match is shown.
  EXPECT_EQ(committee_verdict(summarize({0.01, 0.01, 0.01}), fast).verdict, "inconclusive");
}

// McNemar's exact test against a hand computation: b = 8, c = 2 discordant items,
// P(X <= 2 | n = 10, 1/2) = (1 + 10 + 45) / 1024, two-sided p = 112 / 1024.
TEST(Stats, McNemarExact) {
  EXPECT_NEAR(mcnemar_exact_p(8, 2), 112.0 / 1024.0, 1e-12);
  EXPECT_NEAR(mcnemar_exact_p(2, 8), 112.0 / 1024.0, 1e-12);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(5, 5), 1.0);  // capped at 1
  EXPECT_LT(mcnemar_exact_p(300, 200), 1e-5);
}

TEST(Plan, PresetsLoadAndUnknownNamesFail) {
  const auto names = preset_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "demo"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "paper"), names.end());
  const json demo = load_plan("demo");
  EXPECT_EQ(demo["name"], "demo");
  EXPECT_EQ(load_plan("paper")["architectures"]["deep"]["hidden"], 768);
  EXPECT_THROW(load_plan("no-such-preset"), Error);
}

TEST(Plan, ScaleShrinksSizesAndEpochsWithFloors) {
  json plan = load_plan("paper");
  scale_plan(plan, 0.01);
  EXPECT_EQ(plan["pretrain"]["sequences"], 900);
  EXPECT_EQ(plan["pretrain"]["epochs"], 1);  // 0.5 rounds to at least one epoch
  EXPECT_EQ(plan["e2"]["sequences"], json({200, 400, 900}));
  EXPECT_EQ(plan["tasks"]["agnews"]["finetune"]["per_label_train"], 10);
  EXPECT_EQ(plan["tasks"]["fewrel"]["finetune"]["per_label_test"], 4);  // 0.7 -> the floor of 4
  EXPECT_EQ(plan["pretrain"]["lr"], 5e-5);                              // rates are not sizes
  EXPECT_THROW(scale_plan(plan, 1.5), Error);
  EXPECT_THROW(scale_plan(plan, 0), Error);
  // fastText's epochs shrink as training epochs do; values that meet are tried once.
  json demo = load_plan("demo");
  ASSERT_EQ(demo["fasttext"]["epochs"], json({100, 200}));
  scale_plan(demo, 0.5);
  EXPECT_EQ(demo["fasttext"]["epochs"], json({50, 100}));
  scale_plan(demo, 0.001);
  EXPECT_EQ(demo["fasttext"]["epochs"], json({1}));
}

// The first job of a kind.
int runs_index(const PlanRuns& runs, const std::string& kind) {
  for (size_t i = 0; i < runs.graph.jobs().size(); ++i) {
    if (runs.graph.at(static_cast<int>(i)).kind == kind) return static_cast<int>(i);
  }
  return -1;
}

std::map<std::string, int> kinds(const PlanRuns& runs) {
  std::map<std::string, int> k;
  for (const auto& j : runs.graph.jobs()) ++k[j.kind];
  return k;
}

TEST(Plan, DemoExpandsIntoSharedRuns) {
  const PlanRuns runs = expand_plan(load_plan("demo"), {});
  const auto k = kinds(runs);
  // E1: 3 (task, architecture) settings x 2 arms x 3 seeds x 2 rates = 36; E2 adds one size (6),
  // E3 two corpora (12; gcide at 15k is E2's), E4 two more members over 3 seeds (12; member 1 and
  // the deep model are E1's pre-trained arms): 66 fine-tuning runs.
  EXPECT_EQ(k.at("finetune"), 66);
  EXPECT_EQ(runs.roles["e1"].size(), 3u);
  EXPECT_EQ(k.at("pretrain"), 7);  // shallow x {15k, 60k} + foldoc + bible + 2 members + deep
  EXPECT_EQ(k.at("data"), 1);
  EXPECT_EQ(k.at("vocab"), 1);
  EXPECT_EQ(k.at("committee"), 3);  // one per seed
  EXPECT_EQ(k.at("latency"), 1);    // deep model, one member and the committee, interleaved
  EXPECT_EQ(k.at("clean"), 3);      // gcide, foldoc and the Bible without the tasks' test texts
  // E4's deep arm and first member are E1's pre-trained arms of the same task.
  EXPECT_EQ(runs.roles["e4"]["deep"]["runs"], runs.roles["e1"][1]["pretrained"]);
  EXPECT_EQ(runs.roles["e4"]["members"][0]["runs"], runs.roles["e1"][0]["pretrained"]);
  // The scratch arm of E2 and E3 is E1's shallow scratch arm on the same task.
  EXPECT_EQ(runs.roles["e2"]["scratch"], runs.roles["e1"][0]["scratch"]);
  EXPECT_EQ(runs.roles["e3"]["scratch"], runs.roles["e1"][0]["scratch"]);
  // Every folder is under runs/ (or data/), named from its kind and hash, and dependencies come first.
  for (size_t i = 0; i < runs.graph.jobs().size(); ++i) {
    const Job& j = runs.graph.at(static_cast<int>(i));
    EXPECT_TRUE(j.dir == "data" || j.dir == "runs/" + j.id) << j.dir;
    EXPECT_EQ(j.id.rfind(j.kind + "-", 0), 0u) << j.id;
    for (int d : j.deps) EXPECT_LT(d, static_cast<int>(i)) << j.title;
  }
}

// [[e2]] gives one curve per task; a size's epochs take its pre-training past the sequences the
// corpus holds. A size at [pretrain]'s own epochs is the run every experiment shares.
TEST(Plan, SeveralE2CurvesAndSizesInEpochs) {
  json plan = load_plan("demo");
  const int own = plan["pretrain"]["sequences"];  // the demo's own pre-training, at 4 epochs
  ASSERT_EQ(plan["pretrain"]["epochs"], 4);
  json curve = plan["e2"];
  curve["sequences"] = {15000, own, own};
  curve["epochs"] = {4, 4, 8};
  json other = curve;
  other["task"] = "fortunes";
  plan["e2"] = {curve, other};
  const PlanRuns runs = expand_plan(plan, {});
  ASSERT_TRUE(runs.roles["e2"].is_array());
  ASSERT_EQ(runs.roles["e2"].size(), 2u);
  const json& w = runs.roles["e2"][0]["sizes"];
  EXPECT_EQ(w[1]["pretrain"], runs.roles["e1"][0]["pretrain"]) << own << " x 4 epochs is the demo's own run";
  const Job& longer = runs.graph.at(w[2]["pretrain"].get<int>());
  EXPECT_EQ(longer.config["epochs"], 8);
  EXPECT_EQ(longer.config["sequences"], own);
  EXPECT_NE(w[2]["pretrain"], w[1]["pretrain"]);
  EXPECT_EQ(w[2]["epochs"], 8);
  // Both tasks share the pre-trained runs; each has its own scratch arm.
  EXPECT_EQ(runs.roles["e2"][1]["sizes"][2]["pretrain"], w[2]["pretrain"]);
  EXPECT_NE(runs.roles["e2"][1]["scratch"], runs.roles["e2"][0]["scratch"]);
  // --scale shrinks every curve's sequences and epochs.
  scale_plan(plan, 0.5);
  EXPECT_EQ(plan["e2"][1]["sequences"], json({7500, own / 2, own / 2}));
  EXPECT_EQ(plan["e2"][1]["epochs"], json({2, 2, 4}));
  // An epochs list must match the sizes.
  plan["e2"][0]["epochs"] = {4};
  try {
    check_plan(plan, "test");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[e2] epochs: 1 values for 3 sequences"), std::string::npos) << e.what();
  }
}

TEST(Plan, RunNamesFollowTheirConfiguration) {
  json plan = load_plan("demo");
  const PlanRuns a = expand_plan(plan, {});
  const PlanRuns b = expand_plan(plan, {});
  ASSERT_EQ(a.graph.jobs().size(), b.graph.jobs().size());
  for (size_t i = 0; i < a.graph.jobs().size(); ++i) EXPECT_EQ(a.graph.at(i).id, b.graph.at(i).id);
  plan["finetune"]["epochs"] = 16;  // fine-tuning runs change name, pre-training runs do not
  const PlanRuns c = expand_plan(plan, {});
  const int pre = runs_index(a, "pretrain"), ft = runs_index(a, "finetune");
  EXPECT_EQ(a.graph.at(pre).id, c.graph.at(pre).id);
  EXPECT_NE(a.graph.at(ft).id, c.graph.at(ft).id);
}

// bf16 renames every run that computes (its results are other numbers) and nothing else; fp32
// keeps the names runs had before precisions existed (tests/experiment pins none, so the demo's
// names are compared with a plan that never mentions precision).
TEST(Plan, Bf16RenamesTheRunsThatCompute) {
  const json plan = load_plan("demo");
  const PlanRuns fp32 = expand_plan(plan, {});
  ExpandOptions o;
  o.precision = "bf16";
  const PlanRuns bf16 = expand_plan(plan, o);
  ASSERT_EQ(fp32.graph.jobs().size(), bf16.graph.jobs().size());
  int renamed = 0;
  for (size_t i = 0; i < fp32.graph.jobs().size(); ++i) {
    const auto& a = fp32.graph.at(i);
    const auto& b = bf16.graph.at(i);
    const bool computes = !a.schema.empty() && job_schema(a.schema).find("precision") != nullptr;
    if (computes) {
      EXPECT_NE(a.id, b.id) << a.title;
      EXPECT_EQ(b.config.at("precision"), "bf16") << a.title;
      EXPECT_FALSE(job_schema(a.schema).identity(a.config).contains("precision")) << a.title;
      ++renamed;
    } else {
      EXPECT_EQ(a.id, b.id) << a.title;
    }
  }
  EXPECT_GT(renamed, 10);
  json step = plan;
  step["pretrain"]["precision"] = "bf16";
  try {
    expand_plan(step, {});
    ADD_FAILURE() << "a step's own precision was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precision is the whole experiment's"), std::string::npos) << e.what();
  }
}

// A robustness run with another set of seeds (first_seed) shares no fine-tuning or pre-training
// run with the first one.
TEST(Plan, FirstSeedGivesDisjointSeeds) {
  json plan = load_plan("demo");
  const PlanRuns a = expand_plan(plan, {});
  plan["first_seed"] = 4;
  const PlanRuns b = expand_plan(plan, {});
  std::set<int64_t> seeds;
  std::set<std::string> a_runs;
  for (const auto& j : a.graph.jobs()) a_runs.insert(j.id);
  for (const auto& j : b.graph.jobs()) {
    if (j.kind != "pretrain" && j.kind != "finetune") continue;
    seeds.insert(j.config.at("seed").get<int64_t>());
    EXPECT_EQ(a_runs.count(j.id), 0u) << j.title;
  }
  EXPECT_EQ(seeds, (std::set<int64_t>{4, 5, 6}));
}

class PlanFiles : public testing::TempDirTest {};

TEST_F(PlanFiles, TaskTextsAreReadRelativeToTheExperimentFolder) {
  // The demo's data folder is <out>/data, a relative path: the runner's own working directory
  // must not matter.
  const PlanRuns runs = expand_plan(load_plan("demo"), {});
  const Job* texts = nullptr;
  for (const auto& j : runs.graph.jobs()) {
    if (j.kind == "texts" && j.title.find("wordnet") != std::string::npos) texts = &j;
  }
  ASSERT_NE(texts, nullptr);
  ASSERT_TRUE(texts->internal);
  const std::filesystem::path task = std::filesystem::path(path("out")) / "data/tasks/wordnet-supersense";
  std::filesystem::create_directories(task);
  write_file_atomic((task / "classes.txt").string(), "noun.a\nnoun.b\n");
  write_file_atomic((task / "train.csv").string(), "noun.a,first gloss\nnoun.b,second gloss\n");
  const std::string dir = path("out") + "/" + texts->dir;
  std::filesystem::create_directories(dir);
  texts->internal(path("out"), dir);
  EXPECT_EQ(read_file(dir + "/texts.txt"), "first gloss\nsecond gloss\n");
}

class PlanErrors : public testing::TempDirTest {};

TEST_F(PlanErrors, MissingKeysAndFoldersAreNamed) {
  json plan = load_plan("demo");
  plan.erase("e1");
  plan["e2"]["task"] = "nope";
  expect_error([&] { expand_plan(plan, {}); }, {"[tasks]", "\"nope\""});
  plan = load_plan("demo");
  plan["finetune"].erase("test_seed");
  expect_error([&] { expand_plan(plan, {}); }, {"[finetune]", "test_seed"});
  plan = load_plan("paper");
  expect_error([&] { expand_plan(plan, {.data_dir = path("absent")}); }, {"absent", "does not exist"});
}

// A learning rate is chosen on validation accuracy (its mean over seeds), never on the test set:
// here the rate that scores best on the test set is the worse one on validation.
TEST_F(PlanFiles, TheLearningRateIsChosenOnValidationNotOnTest) {
  auto run = [&](const std::string& name, double valid, double test) {
    std::filesystem::create_directories(path(fmt::format("out/{}", name)));
    write_file_atomic(path(fmt::format("out/{}/metrics.json", name)),
                      json{{"final", {{"valid_accuracy", valid}}}, {"test", {{"accuracy", test}}}}.dump());
    return name;
  };
  const std::vector<std::vector<std::string>> grid = {{run("a1", 0.50, 0.90), run("a2", 0.54, 0.92)},   // lr 1
                                                      {run("b1", 0.60, 0.10), run("b2", 0.58, 0.12)}};  // lr 2
  EXPECT_EQ(choose_lr(path("out"), grid), 1);
  const auto means = mean_valid_accuracy(path("out"), grid);
  EXPECT_DOUBLE_EQ(means[0], 0.52);
  EXPECT_DOUBLE_EQ(means[1], 0.59);
}

TEST(Svg, LinePlotDrawsEveryPointInsideItsFrame) {
  LinePlot p;
  p.id = "x";
  p.title = "a < b & c";
  p.series.push_back({"s", {1, 2, 3}, {10, 20, 30}, {1, 1, 50}, false});
  const std::string svg = render_svg(p);
  EXPECT_NE(svg.find("data-plot=\"x\""), std::string::npos);
  EXPECT_NE(svg.find("a &lt; b &amp; c"), std::string::npos);
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
  EXPECT_EQ(circles, 3u);
  // The y ticks (right-aligned labels) cover the error bars, from -20 to 80.
  std::vector<double> ticks;
  const std::string mark = "text-anchor=\"end\">";
  for (size_t at = svg.find(mark); at != std::string::npos; at = svg.find(mark, at + 1)) {
    ticks.push_back(std::stod(svg.substr(at + mark.size())));
  }
  ASSERT_GE(ticks.size(), 3u);
  EXPECT_LE(*std::min_element(ticks.begin(), ticks.end()), -20.0);
  EXPECT_GE(*std::max_element(ticks.begin(), ticks.end()), 80.0);
}

TEST(Svg, BarPlotHasOneBarPerValue) {
  BarPlot p;
  p.id = "bars";
  p.categories = {"a", "b"};
  p.groups = {{"g1", {1.0, 2.0}}, {"g2", {3.0, 0.5}}};
  const std::string svg = render_svg(p);
  size_t bars = 0;
  for (size_t at = svg.find("class=\"bar\""); at != std::string::npos; at = svg.find("class=\"bar\"", at + 1)) ++bars;
  EXPECT_EQ(bars, 4u);
}

}  // namespace
}  // namespace tlm::experiment
