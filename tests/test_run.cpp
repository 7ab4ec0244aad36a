// The run layer: job schemas, the data rules of a run (samples, the validation carve, the test
// draw, the pre-training split), folder locks and the checkpoint rule; and token overlap.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "temp_dir.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/job_config.h"
#include "tlm/overlap.h"
#include "tlm/run_data.h"
#include "tlm/toml_json.h"

namespace tlm::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- job schemas

class JobConfig : public TempDirTest {};

TEST_F(JobConfig, LayersResolveInOrderAndRememberWhatWasGiven) {
  const JobSchema& s = job_schema("pretrain");
  write_file_atomic(path("run.toml"), "lr = 3e-4\nepochs = 2\nlayers = 1\ncorpus = \"a.txt\"\n");
  ConfigResolver r(s);
  r.apply_file(path("run.toml"));
  r.apply_text("epochs", "5", "--epochs");
  r.apply_set("layers=3");
  r.apply_json({{"vocab", "v.txt"}, {"out", "o"}}, "test");
  const ResolvedConfig c = r.result();
  EXPECT_EQ(c.config["lr"], 3e-4);                        // the file over the default
  EXPECT_EQ(c.config["epochs"], 5);                       // a flag over the file
  EXPECT_EQ(c.config["layers"], 3);                       // --set over everything
  EXPECT_EQ(c.config["hidden"], 128);                     // the default
  EXPECT_EQ(c.config["corpus"], json::array({"a.txt"}));  // one string is a one-element list
  EXPECT_TRUE(c.was_given("layers"));
  EXPECT_FALSE(c.was_given("hidden"));
}

TEST_F(JobConfig, ValuesAreCheckedWhereverTheyComeFrom) {
  const JobSchema& s = job_schema("pretrain");
  ConfigResolver r(s);
  expect_error([&] { r.apply_text("lr", "nan", "--lr"); }, {"lr (--lr)", "not a finite number"});
  expect_error([&] { r.apply_text("lr", "-1", "--lr"); }, {"out of range", ">= 0"});
  expect_error([&] { r.apply_text("mask_prob", "1", "--mask-prob"); }, {"out of range", "< 1"});
  expect_error([&] { r.apply_json({{"layers", 1.5}}, "f.toml"); }, {"f.toml", "layers", "expected an integer"});
  expect_error([&] { r.apply_json({{"layers", "one"}}, "f.toml"); }, {"expected an integer, got \"one\""});
  expect_error([&] { r.apply_json({{"seq_mode", "lines"}}, "f.toml"); }, {"not one of first, chunk"});
  expect_error([&] { r.apply_set("epochz=2"); }, {"unknown key \"epochz\"", "did you mean \"epochs\""});
  expect_error([&] { r.apply_set("epochs"); }, "expected key=value");
  json lr_as_int = {{"lr", 1}};  // a float key takes an integer
  r.apply_json(lr_as_int, "f.toml");
  // Relations between keys, and required keys, are checked on the whole.
  r.apply_json({{"corpus", "c.txt"}, {"vocab", "v.txt"}, {"out", "o"}, {"hidden", 30}, {"heads", 4}}, "f.toml");
  expect_error([&] { r.result(); }, "--hidden 30 is not a multiple of --heads 4");
  ConfigResolver missing(s);
  expect_error([&] { missing.result(); }, "--corpus is required");
}

TEST_F(JobConfig, OneKernelHasOneSpellingAndOneRunName) {
  const JobSchema& s = job_schema("pretrain");
  auto resolved = [&](const std::string& kernel) {
    ConfigResolver r(s);
    r.apply_json({{"corpus", "c.txt"}, {"vocab", "v.txt"}, {"out", "o"}, {"conv_layers", 2}}, "f.toml");
    r.apply_text("conv_kernel", kernel, "--conv-kernel");
    return r.result().config;
  };
  EXPECT_EQ(resolved("3,3")["conv_kernel"], "3");
  EXPECT_EQ(resolved("16,3")["conv_kernel"], "16,3");
  EXPECT_EQ(s.identity(resolved("3,3")), s.identity(resolved("3")));
  EXPECT_NE(s.identity(resolved("3,5")), s.identity(resolved("3")));
}

TEST_F(JobConfig, IdentityLeavesOutWhatDoesNotChangeResults) {
  const JobSchema& s = job_schema("finetune");
  json c = s.defaults();
  c["train"] = "t.csv";
  c["precision"] = "fp32";  // runs resolve auto (training's default) before they are named
  json with_threads = c;
  with_threads["threads"] = 7;
  with_threads["out"] = "elsewhere";
  with_threads["checkpoint_every"] = 100;
  EXPECT_EQ(s.identity(c), s.identity(with_threads));
  json other_lr = c;
  other_lr["lr"] = 1e-3;
  EXPECT_NE(s.identity(c), s.identity(other_lr));
  EXPECT_FALSE(s.identity(c).contains("threads"));
  // Keys added after runs were named keep the old names at their defaults (the demo's runs, docs/curve).
  for (const char* key : {"test_every", "schedule", "precision", "conv_layers"}) {
    EXPECT_FALSE(s.identity(c).contains(key)) << key;
  }
  json in_bf16 = c;  // a resolved bf16 is named, a resolved fp32 is not (the names of older runs)
  in_bf16["precision"] = "bf16";
  EXPECT_EQ(s.identity(in_bf16)["precision"], "bf16");
  json at_end = c;
  at_end["test_every"] = "end";
  EXPECT_EQ(s.identity(at_end)["test_every"], "end");
  // A key added later enters a name only when it is set away from its default.
  const JobSchema later("k", {"k"}, "test",
                        {Field{"a", FieldType::kInt, 1, "a"},
                         Field{"b", FieldType::kInt, 0, "b", false, 0, 9, false, false, {}, Identity::kWhenSet}});
  EXPECT_EQ(later.identity({{"a", 1}, {"b", 0}}), json({{"a", 1}}));
  EXPECT_EQ(later.identity({{"a", 1}, {"b", 2}}), json({{"a", 1}, {"b", 2}}));
}

TEST_F(JobConfig, JobFilesRoundTripThroughToml) {
  const JobSchema& s = job_schema("finetune");
  json c = s.defaults();
  c["train"] = "data/t \"x\".csv";
  c["format"] = "csv";
  c["lr"] = 1e-5;
  c["warmup"] = 1.0;  // a float that prints without a point
  c["scratch"] = true;
  c["vocab"] = "v.txt";
  c["per_label_test"] = 3;
  c["out"] = "o";
  write_file_atomic(path("job.toml"), config_to_toml(c, "a job\nfrom a test"));
  ConfigResolver r(s);
  r.apply_file(path("job.toml"));
  EXPECT_EQ(r.result().config, c);
  EXPECT_EQ(read_file(path("job.toml")).rfind("# a job\n# from a test\n", 0), 0u);
  // With the schema, the keys not given follow as comments with their defaults, and stay not given.
  const json given = {{"train", "t.csv"}, {"format", "csv"},     {"scratch", true},
                      {"vocab", "v.txt"}, {"per_label_test", 3}, {"out", "o"}};
  write_file_atomic(path("given.toml"), config_to_toml(given, "given", &s));
  const std::string text = read_file(path("given.toml"));
  EXPECT_NE(text.find("\n# epochs = 3\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("# train ="), std::string::npos) << "a given key is not repeated as a default";
  ConfigResolver g(s);
  g.apply_file(path("given.toml"));
  const ResolvedConfig back = g.result();
  EXPECT_FALSE(back.was_given("epochs"));
  EXPECT_EQ(back.config["epochs"], 3);
}

// ---- the data rules of a run

SequenceSet labeled_set(int per_label, int labels, int offset) {
  SequenceSet s;
  for (int l = 0; l < labels; ++l) s.label_names.push_back(fmt::format("l{}", l));
  for (int i = 0; i < per_label * labels; ++i) s.add(std::vector<int32_t>{101, offset + i, 102}, i % labels);
  return s;
}

std::multiset<int32_t> ids_of(const SequenceSet& s) {
  std::multiset<int32_t> ids;
  for (int64_t i = 0; i < s.size(); ++i) ids.insert(s.sequence(i)[1]);
  return ids;
}

TEST(RunData, SamplesAreBalancedSeededAndDisjoint) {
  const SequenceSet train = labeled_set(30, 3, 1000), test = labeled_set(20, 3, 5000);
  LabeledSampleOptions o;
  o.per_label_train = 12;
  o.per_label_test = 5;
  o.per_label_valid = 4;
  o.seeds = {7, 8};
  const LabeledSample a = draw_labeled_sample(train, &test, o);
  EXPECT_EQ(a.train.size(), 3 * 8);
  EXPECT_EQ(a.valid.size(), 3 * 4);
  EXPECT_EQ(a.test.size(), 3 * 5);
  std::multiset<int32_t> all = ids_of(a.train);
  for (int32_t id : ids_of(a.valid)) EXPECT_EQ(all.count(id), 0u) << "validation overlaps training";
  for (int32_t id : ids_of(a.test)) EXPECT_GE(id, 5000) << "the test sample comes from the test set";
  // The same seeds draw the same samples; another training seed leaves the test sample alone.
  const LabeledSample again = draw_labeled_sample(train, &test, o);
  EXPECT_EQ(ids_of(a.train), ids_of(again.train));
  EXPECT_EQ(ids_of(a.valid), ids_of(again.valid));
  o.seeds.sample = 9;
  const LabeledSample other = draw_labeled_sample(train, &test, o);
  EXPECT_NE(ids_of(a.train), ids_of(other.train));
  EXPECT_EQ(ids_of(a.test), ids_of(other.test));
  // The test draw alone (what eval scores a committee on) is the fine-tuning run's test sample.
  EXPECT_EQ(ids_of(draw_test_sample(test, 5, 8, false, nullptr)), ids_of(a.test));
}

TEST(RunData, WithoutATestFileTheSplitIsDisjointAndCapsAreNoted) {
  const SequenceSet train = labeled_set(10, 2, 0);
  LabeledSampleOptions o;
  o.per_label_train = 8;
  o.per_label_test = 4;
  EXPECT_THROW(draw_labeled_sample(train, nullptr, o), Error);  // 8 + 4 > 10 without capping
  o.cap = true;
  const LabeledSample s = draw_labeled_sample(train, nullptr, o);
  EXPECT_EQ(s.test.size(), 8);  // the test share comes first
  EXPECT_EQ(s.train.size(), 12);
  EXPECT_EQ(s.capped.size(), 2u);
  for (int32_t id : ids_of(s.test)) EXPECT_EQ(ids_of(s.train).count(id), 0u);
  o.per_label_test = 0;
  EXPECT_THROW(draw_labeled_sample(train, nullptr, o), Error);
}

// Without a test file, every training seed and arm is scored on one test sample, fixed by the
// test seed; the training samples differ and never touch it.
TEST(RunData, WithoutATestFileTheTestSampleFollowsTheTestSeedAlone) {
  const SequenceSet one_file = labeled_set(40, 3, 0);
  LabeledSampleOptions o;
  o.per_label_train = 10;
  o.per_label_test = 8;
  o.seeds = {1, 77};
  const LabeledSample a = draw_labeled_sample(one_file, nullptr, o);
  o.seeds.sample = 2;
  const LabeledSample b = draw_labeled_sample(one_file, nullptr, o);
  EXPECT_EQ(ids_of(a.test), ids_of(b.test));
  EXPECT_NE(ids_of(a.train), ids_of(b.train));
  for (const auto* s : {&a, &b}) {
    for (int32_t id : ids_of(s->train)) EXPECT_EQ(ids_of(s->test).count(id), 0u);
  }
  o.seeds.test = 78;
  EXPECT_NE(ids_of(draw_labeled_sample(one_file, nullptr, o).test), ids_of(a.test));
  // The labels-only draw (what keeps test texts out of vocabularies and corpora) is the same sample.
  const Sample idx = draw_test_indices(one_file.labels, one_file.label_names, 8, 77, false);
  std::multiset<int32_t> ids;
  for (int64_t i : idx.indices) ids.insert(one_file.sequence(i)[1]);
  EXPECT_EQ(ids, ids_of(a.test));
}

// The validation split takes what a short label has, but never all of it: a label would then be
// scored without ever being trained on. Text and tokens draw the same indices.
TEST(RunData, ValidationNeverTakesALabelsWholeTrainingSample) {
  const std::vector<std::string> names = {"a", "b"};
  const std::vector<int32_t> labels = {0, 0, 0, 0, 0, 1, 1, 1};
  LabeledSampleOptions o{.per_label_test = 1, .per_label_valid = 1, .cap = true, .seeds = {3, 4}};
  const LabeledDraw d = draw_labeled_indices(labels, nullptr, names, o);
  EXPECT_EQ(d.test.size(), 2u);
  EXPECT_EQ(d.valid.size(), 2u);
  EXPECT_EQ(d.train.size(), 4u);  // a: 4 left after the test draw, 1 to validation; b: 2 left, 1 to validation
  o.per_label_valid = 2;          // b's 2 would all go to validation
  try {
    draw_labeled_indices(labels, nullptr, names, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label \"b\": all 2 of its training examples"), std::string::npos) << e.what();
  }
}

TEST(RunData, PretrainingSplitHoldsOutValidationFirst) {
  SequenceSet all;
  for (int i = 0; i < 100; ++i) all.add(std::vector<int32_t>{101, i, 102});
  const PretrainSplit s = split_pretraining(all, 40, 10, 3);
  EXPECT_EQ(s.valid.size(), 10);
  EXPECT_EQ(s.train.size(), 40);
  for (int32_t id : ids_of(s.valid)) EXPECT_EQ(ids_of(s.train).count(id), 0u);
  EXPECT_EQ(ids_of(split_pretraining(all, 0, 10, 3).valid), ids_of(s.valid)) << "the size must not move validation";
  EXPECT_EQ(split_pretraining(all, 0, -1, 3).valid.size(), 5);  // 5%
  EXPECT_THROW(split_pretraining(all, 95, 10, 3), Error);
  EXPECT_THROW(split_pretraining(all, 0, 100, 3), Error);  // nothing left to train on
}

// ---- locks and the checkpoint rule

class RunFolder : public TempDirTest {};

TEST_F(RunFolder, ALockIsExclusiveNamesItsHolderAndGoesWithIt) {
  {
    const FolderLock lock(dir_.string(), "run folder");
    EXPECT_TRUE(FolderLock::is_held(dir_.string()));
    expect_error([&] { FolderLock again(dir_.string(), "run folder"); },
                 {"in use by another tlm process", fmt::format("pid {}", ::getpid())});
  }
  EXPECT_FALSE(FolderLock::is_held(dir_.string()));
  const FolderLock after(dir_.string(), "run folder");  // released with its holder
}

TEST_F(RunFolder, OnlyRenamedCheckpointsWithTrainerStateCount) {
  const std::string run = dir_.string();
  auto make = [&](const std::string& name, bool state) {
    fs::create_directories(dir_ / "checkpoints" / name);
    if (state) write_file_atomic((dir_ / "checkpoints" / name / "trainer_state.json").string(), "{}");
  };
  EXPECT_EQ(latest_checkpoint(run), "");
  make("step-000000004", true);
  make("step-000000008.tmp-123", true);  // cut before its rename
  make("step-000000012", false);         // no trainer state
  make("step-1", true);                  // not the fixed-width name
  EXPECT_EQ(latest_checkpoint(run), (dir_ / "checkpoints" / "step-000000004").string());
  EXPECT_EQ(remove_partial_checkpoints(run), 3);
  EXPECT_EQ(complete_checkpoints(run).size(), 1u);
  // A write that fails (a full disk) leaves no partial folder behind.
  EXPECT_THROW(write_checkpoint(run, 14, 2, [](const std::string&) { throw Error("disk full"); }), Error);
  EXPECT_EQ(remove_partial_checkpoints(run), 0);
  int writes = 0;
  for (int64_t step : {16, 20, 24}) {
    write_checkpoint(run, step, 2, [&](const std::string& tmp) {
      ++writes;
      EXPECT_NE(tmp.find(".tmp-"), std::string::npos);
      write_file_atomic(tmp + "/trainer_state.json", "{}");
    });
  }
  EXPECT_EQ(writes, 3);
  const auto kept = complete_checkpoints(run);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(fs::path(kept[0]).filename(), "step-000000020");
  EXPECT_EQ(fs::path(kept[1]).filename(), "step-000000024");
}

// ---- token overlap

class Overlap : public TempDirTest {};

TEST_F(Overlap, SharesOfTokensAndWords) {
  write_file_atomic(path("corpus.txt"), "the cat sat\n");
  write_file_atomic(path("classes.txt"), "a\nb\n");
  write_file_atomic(path("data.csv"), "a,the cat\nb,the dog dog\n");
  const Vocab v = Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "dog"}, "v");
  const Tokenizer tok(v, {});
  const json o = measure_overlap({path("corpus.txt")}, {}, path("data.csv"),
                                 ReaderOptions{.format = Format::kCsv, .classes_path = path("classes.txt")}, tok);
  // Data pieces: the x2, cat, dog x2; the corpus has "the" and "cat".
  EXPECT_DOUBLE_EQ(o["token_type_overlap"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(o["token_occurrence_overlap"].get<double>(), 3.0 / 5);
  EXPECT_DOUBLE_EQ(o["word_type_overlap"].get<double>(), 2.0 / 3);
  EXPECT_EQ(o["read"]["data_examples"], 2);
  write_file_atomic(path("empty.txt"), "");
  expect_error([&] { measure_overlap({path("empty.txt")}, {}, path("data.csv"), {}, tok); }, "the corpus has no words");
}

}  // namespace
}  // namespace tlm::testing
