// fastText as the practitioner's baseline: `tlm fasttext` trains on exactly a fine-tuning run's
// sample, and the experiment's results and report compare it with the tiny models (planted runs).
#include <gtest/gtest.h>

#include <filesystem>

#include "experiment/plan.h"
#include "experiment/report.h"
#include "experiment/results.h"
#include "temp_dir.h"
#include "tlm/eval_jobs.h"
#include "tlm/file_io.h"
#include "tlm/job_config.h"
#include "tlm/predictions.h"
#include "tlm/readers.h"
#include "tlm/run_data.h"

namespace tlm {
namespace {

namespace fs = std::filesystem;
using experiment::Job;
using experiment::PlanRuns;
using nlohmann::json;

class FastTextJob : public testing::TempDirTest {
 protected:
  // Two labels of 30 texts each, told apart by their words.
  void SetUp() override {
    TempDirTest::SetUp();
    std::string csv;
    for (int i = 0; i < 30; ++i) {
      csv += fmt::format("animal,The cat number {} sleeps; dogs bark!\n", i);
      csv += fmt::format("vehicle,\"A truck {} drives, engines roar.\"\n", i);
    }
    write_file_atomic(path("data.csv"), csv);
    write_file_atomic(path("classes.txt"), "animal\nvehicle\n");
  }
  ResolvedConfig config(const std::string& out, json more = json::object()) const {
    ConfigResolver r(job_schema("fasttext"));
    json c = {{"train", path("data.csv")},
              {"classes", path("classes.txt")},
              {"format", "csv"},
              {"per_label_train", 12},
              {"valid_per_label", 4},
              {"per_label_test", 5},
              {"sample_seed", 3},
              {"lrs", {0.5}},
              {"epochs", {5, 20}},
              {"word_ngrams", {1}},
              {"bucket", 1000},
              {"out", path(out)}};
    for (const auto& [k, v] : more.items()) c[k] = v;
    r.apply_json(c, "test");
    return r.result();
  }
};

TEST_F(FastTextJob, TrainsOnTheFineTuningSampleAndRepeatsExactly) {
  const json m = run_fasttext_job(config("a"));
  // The examples a fine-tuning run with the same keys draws (run_data.h), as fastText's words.
  const LabeledData d = read_labeled(path("data.csv"), {.format = Format::kCsv, .classes_path = path("classes.txt")});
  std::vector<int32_t> labels;
  for (const auto& ex : d.examples) labels.push_back(ex.label);
  const LabeledDraw draw =
      draw_labeled_indices(labels, nullptr, d.label_names,
                           {.per_label_train = 12, .per_label_test = 5, .per_label_valid = 4, .seeds = {3, 4}});
  ASSERT_EQ(draw.train.size(), 16u);
  std::string expected;
  for (int64_t i : draw.train) {
    std::string words = d.examples[i].text;
    for (auto& ch : words) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    expected += fmt::format("__label__{} {}\n", d.examples[i].label, words);
  }
  // BERT's pre-tokenizer splits punctuation off and lowercases: "sleeps; dogs bark!" -> "sleeps ; dogs bark !".
  std::string got = read_file(path("a/train.txt"));
  for (const char* p : {" ;", " !", " ,", " ."}) {
    for (size_t at; (at = got.find(p)) != std::string::npos;) got.erase(at, 1);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(m["train_examples"], 16);
  EXPECT_EQ(m["valid_examples"], 8);
  EXPECT_EQ(m["test_examples"], 10);
  ASSERT_EQ(m["grid"].size(), 2u);
  // The run's own choice is the best validation accuracy; the test accuracy is that setting's.
  const json& g = m["grid"];
  const int best = g[1]["valid_accuracy"].get<double>() > g[0]["valid_accuracy"].get<double>() ? 1 : 0;
  EXPECT_EQ(m["chosen"], g[best]["setting"]);
  EXPECT_EQ(m["test"]["accuracy"], g[best]["test_accuracy"]);
  // Every setting's test accuracy is its per-item probabilities' argmax.
  const Predictions p = load_predictions(path("a/test_predictions.safetensors"));
  for (const auto& row : g) {
    const auto ok = p.correct(row["setting"]);
    EXPECT_DOUBLE_EQ(row["test_accuracy"].get<double>(), std::count(ok.begin(), ok.end(), 1) / 10.0);
  }
  for (const auto& e : fs::directory_iterator(path("a"))) {
    EXPECT_EQ(e.path().filename().string().find("models.tmp"), std::string::npos) << "the models are removed";
  }
  // Validation accuracies from their own per-item file.
  const Predictions pv = load_predictions(path("a/valid_predictions.safetensors"));
  ASSERT_EQ(pv.size(), 8);
  for (const auto& row : g) {
    const auto ok = pv.correct(row["setting"]);
    EXPECT_DOUBLE_EQ(row["valid_accuracy"].get<double>(), std::count(ok.begin(), ok.end(), 1) / 8.0);
  }
  // One thread and a seed: the same run again gives the same probabilities.
  run_fasttext_job(config("b"));
  EXPECT_EQ(read_file(path("a/test_predictions.safetensors")), read_file(path("b/test_predictions.safetensors")));
  // A finished folder missing an output, or with a metrics.json not of a run, is damaged.
  fs::remove(path("b/test_predictions.safetensors"));
  expect_error([&] { run_fasttext_job(config("b")); }, {"test_predictions.safetensors"});
  write_file_atomic(path("b/metrics.json"), "{}");
  expect_error([&] { run_fasttext_job(config("b")); }, {"metrics.json is not a finished fastText run's"});
  // A finished folder: the same work returns it as it is; other work is refused, the folder kept.
  const std::string before = read_file(path("a/metrics.json"));
  EXPECT_EQ(run_fasttext_job(config("a")), m);
  expect_error(
      [&] {
        run_fasttext_job(config("a", {{"epochs", {7}}}));
      },
      {"a holds a finished fastText run of other work (--epochs differ)"});
  write_file_atomic(path("data.csv"), read_file(path("data.csv")) + "animal,One more cat.\n");
  expect_error([&] { run_fasttext_job(config("a")); }, {"(the data files differ)"});
  EXPECT_EQ(read_file(path("a/metrics.json")), before);
}

TEST_F(FastTextJob, ADivergingSettingIsRecordedAndLeftOut) {
  // fastText aborts ("Encountered NaN") at a learning rate of 50 on these texts.
  const json m = run_fasttext_job(config("d", {{"lrs", {0.5, 50}}, {"epochs", {20}}}));
  ASSERT_EQ(m["grid"].size(), 2u);
  EXPECT_FALSE(m["grid"][0].contains("failed"));
  ASSERT_TRUE(m["grid"][1].contains("failed")) << m["grid"][1].dump();
  EXPECT_TRUE(m["grid"][1]["valid_accuracy"].is_null());
  EXPECT_EQ(m["chosen"], "lr=0.5 epoch=20 word_ngrams=1");
  EXPECT_FALSE(load_predictions(path("d/test_predictions.safetensors")).probs.count("lr=50 epoch=20 word_ngrams=1"));
  expect_error(
      [&] {
        run_fasttext_job(config("e", {{"lrs", {50}}, {"epochs", {20, 30}}}));
      },
      {"every setting of the grid failed"});
  EXPECT_FALSE(fs::exists(path("e/metrics.json")));
}

TEST_F(FastTextJob, RefusesBeforeWritingAnything) {
  expect_error(
      [&] {
        run_fasttext_job(config("c", {{"fasttext", "no-such-fasttext-program"}}));
      },
      {"no-such-fasttext-program", "not found on PATH", "apt-get install fasttext"});
  expect_error([&] { run_fasttext_job(config("c", {{"train", path("absent.csv")}})); }, {"absent.csv"});
  EXPECT_FALSE(fs::exists(path("c")));
  write_file_atomic(path("afile"), "x");
  expect_error([&] { run_fasttext_job(config("afile")); }, {"afile: a file, not a folder"});
  // A program that fails otherwise than by diverging stops the run: nothing is taken as finished.
  write_file_atomic(path("fake.sh"), "#!/bin/sh\necho broken >&2\nexit 3\n");
  fs::permissions(path("fake.sh"), fs::perms::owner_all);
  expect_error([&] { run_fasttext_job(config("f", {{"fasttext", path("fake.sh")}})); }, {"exit status 3"});
  EXPECT_FALSE(fs::exists(path("f/metrics.json")));
  for (const auto& e : fs::directory_iterator(path("f"))) {
    EXPECT_EQ(e.path().filename().string().find("models.tmp"), std::string::npos) << "removed on failure too";
  }
  // A grid needs a validation split to choose on.
  expect_error([&] { config("c", {{"valid_per_label", 0}}); }, {"--valid-per-label", "2 settings"});
  expect_error([&] { config("c", {{"lrs", json::array()}}); }, {"lrs", "a list of numbers"});
  expect_error([&] { config("c", {{"epochs", {5, 20, 5}}}); }, {"--epochs lists 5 twice"});
  expect_error([&] { config("c", {{"bucket", 100000000}, {"dim", 4096}}); }, {"over 8 GiB"});
  ConfigResolver r(job_schema("fasttext"));
  r.apply_text("epochs", "5,25,50", "--epochs");
  EXPECT_EQ(r.partial().config["epochs"], json({5, 25, 50}));
  expect_error([&] { r.apply_text("epochs", "5,x", "--epochs"); }, {"\"x\" is not an integer"});
}

// Planted runs where fastText and the tiny model disagree: on "easy" the tiny model wins every
// seed, on "hard" fastText does. fastText's grid has a setting that scores best on the test set
// but worse on validation, and one that failed in a seed: neither may be chosen.
class FastTextReport : public testing::TempDirTest {
 protected:
  static constexpr int kItems = 20;
  const std::string kGood = "lr=0.5 epoch=25 word_ngrams=1", kTestBest = "lr=1 epoch=25 word_ngrams=1",
                    kDiverged = "lr=9 epoch=25 word_ngrams=1";

  // Per-item probabilities of 2 labels, every item of label 0: the first `right` items correct.
  static std::vector<float> probs_with(int right) {
    std::vector<float> p;
    for (int i = 0; i < kItems; ++i) {
      p.push_back(i < right ? 0.8f : 0.3f);
      p.push_back(i < right ? 0.2f : 0.7f);
    }
    return p;
  }
  Predictions items(std::map<std::string, std::vector<float>> probs) const {
    Predictions p;
    p.label_names = {"a", "b"};
    p.labels.assign(kItems, 0);
    for (int i = 0; i < kItems; ++i) p.items.push_back(1000 + i);
    p.probs = std::move(probs);
    return p;
  }
  int job(const std::string& kind, const std::string& name) {
    Job j;
    j.kind = kind;
    j.id = j.dir = "runs/" + name;
    j.title = name;
    fs::create_directories(path(j.dir));
    return runs_.graph.add(j);
  }
  int finetune(const std::string& name, int right) {
    const int i = job("finetune", name);
    const double acc = right / static_cast<double>(kItems);
    write_file_atomic(
        path("runs/" + name + "/metrics.json"),
        json{{"final", {{"valid_accuracy", 0.5}}}, {"test", {{"accuracy", acc}}}, {"history", json::array()}}.dump());
    save_predictions(path("runs/" + name + "/test_predictions.safetensors"), items({{"model", probs_with(right)}}));
    return i;
  }
  int fasttext(const std::string& name, int right, int right_test_best) {
    const int i = job("fasttext", name);
    auto row = [](const std::string& setting, double lr, json valid, json test) {
      return json{{"setting", setting}, {"lr", lr}, {"epoch", 25}, {"valid_accuracy", valid}, {"test_accuracy", test}};
    };
    json grid = {row(kGood, 0.5, 0.7, right / static_cast<double>(kItems)),
                 row(kTestBest, 1, 0.6, right_test_best / static_cast<double>(kItems)), row(kDiverged, 9, 0.9, 0.9)};
    // The best on validation where it ran, but it failed in the second seed: it takes no part.
    if (name.ends_with("-1")) {
      grid[2] = row(kDiverged, 9, nullptr, nullptr);
      grid[2]["failed"] = "signal 6";
    }
    write_file_atomic(path("runs/" + name + "/metrics.json"),
                      json{{"grid", grid}, {"train_examples", 40}, {"valid_examples", 20}}.dump());
    save_predictions(path("runs/" + name + "/test_predictions.safetensors"),
                     items({{kGood, probs_with(right)}, {kTestBest, probs_with(right_test_best)}}));
    return i;
  }
  // One E1 setting: per seed, the tiny model's and fastText's right answers.
  json e1_row(const std::string& task, const std::vector<int>& tiny, const std::vector<int>& ft) {
    json pre = json::array({json::array()}), scr = json::array({json::array()}), fts = json::array();
    for (size_t s = 0; s < tiny.size(); ++s) {
      pre[0].push_back(finetune(fmt::format("{}-pre-{}", task, s), tiny[s]));
      scr[0].push_back(finetune(fmt::format("{}-scr-{}", task, s), tiny[s] - 1));
      fts.push_back(fasttext(fmt::format("{}-ft-{}", task, s), ft[s], kItems));
    }
    return {{"task", task},      {"arch", "shallow"}, {"pretrain", job("pretrain", task + "-pretrain")},
            {"pretrained", pre}, {"scratch", scr},    {"fasttext", fts}};
  }

  PlanRuns runs_;
};

TEST_F(FastTextReport, TheFirstTableSaysWhoWinsPerTask) {
  runs_.roles = {{"pretrain", json::array()}, {"seeds", 3}, {"first_seed", 1}, {"lrs", {1e-3}}};
  runs_.roles["e1"] = {e1_row("easy", {18, 17, 19}, {10, 11, 9}), e1_row("hard", {6, 7, 5}, {14, 15, 14})};
  const json plan = {{"name", "planted"},
                     {"architectures", {{"shallow", {{"layers", 1}, {"hidden", 8}, {"heads", 2}}}}},
                     {"pretrain", json::object()},
                     {"finetune", {{"per_label_train", 30}, {"valid_per_label", 10}}}};
  const json r = experiment::collect_results(runs_, plan, path(""), json::object());

  ASSERT_EQ(r["fasttext"].size(), 2u);
  const json& easy = r["fasttext"][0];
  EXPECT_EQ(easy["model"], "pre-trained shallow");
  EXPECT_EQ(easy["fasttext"]["chosen_setting"], kGood) << "chosen on validation, not on the test set";
  EXPECT_TRUE(easy["fasttext"]["valid_accuracy_by_setting"][2].is_null()) << "a setting that failed in a seed";
  EXPECT_EQ(easy["fasttext"]["test_accuracy"], json({0.5, 0.55, 0.45}));
  EXPECT_EQ(easy["difference"]["verdict"], "held");
  EXPECT_EQ(r["fasttext"][1]["difference"]["verdict"], "did not hold");
  // McNemar from the items: on "easy" seed 1 the tiny model is right on items 10-17 alone.
  EXPECT_EQ(easy["mcnemar"][0]["model_right_fasttext_wrong"], 8);
  EXPECT_EQ(easy["mcnemar"][0]["fasttext_right_model_wrong"], 0);
  EXPECT_EQ(r["findings"].back()["id"], "F5");
  EXPECT_EQ(r["findings"].back()["verdict"], "mixed");

  experiment::write_report(r, path("report"), {});
  const std::string md = read_file(path("report/report.md"));
  const size_t section = md.find("## Tiny models against fastText"), first_table = md.find("\n| ");
  ASSERT_NE(section, std::string::npos);
  EXPECT_LT(section, first_table) << "the comparison with fastText is the report's first table";
  EXPECT_LT(first_table, md.find("## Findings"));
  EXPECT_NE(md.find("| easy | 40 + 20 | pre-trained shallow | 90.0 ± 5.0 | 50.0 ± 5.0 | " + kGood + " | +40.0 ["),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| **held** |"), std::string::npos);
  EXPECT_NE(md.find("| hard | 40 + 20 | pre-trained shallow | 30.0 ± 5.0 | 71.7 ± 2.9 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| **did not hold** |"), std::string::npos);
  EXPECT_NE(md.find("| F5 | a pre-trained tiny model or a soft committee beats a tuned fastText"), std::string::npos);
  // The chosen learning rate is the grid's lowest: the report says the grid may be too narrow.
  EXPECT_EQ(easy["fasttext"]["at_grid_edge"], json({"lr=0.5 is the grid's lowest"}));
  EXPECT_NE(md.find("fastText's chosen setting lies at an end of its grid (easy: lr=0.5 is the grid's lowest; hard: "),
            std::string::npos);
}

}  // namespace
}  // namespace tlm
