// Token shards round-trip exactly, and the cache notices a changed source or vocabulary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"
#include "tlm/sequences_cache.h"
#include "tlm/shard.h"

namespace tlm {
namespace {

namespace fs = std::filesystem;

class ShardTest : public testing::TempDirTest {};

SequenceSet sample_set(int32_t max_id, bool labels) {
  SequenceSet s;
  Rng rng(4);
  for (int i = 0; i < 50; ++i) {
    std::vector<int32_t> seq(1 + rng.below(40));
    for (auto& id : seq) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(max_id)));
    s.add(seq, labels ? i % 3 : -1);
  }
  if (labels) s.label_names = {"x", "yy", "zzz"};
  return s;
}

void expect_same(const SequenceSet& a, const SequenceSet& b) {
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.label_names, b.label_names);
}

TEST_F(ShardTest, RoundTripsExactlyWithNarrowAndWideIds) {
  const ShardKey key{1, 2, 3};
  const SequenceSet narrow = sample_set(30522, true);
  write_shard(path("n.tlmshard"), narrow, key, 30522);
  ShardKey back;
  expect_same(read_shard(path("n.tlmshard"), &back), narrow);
  EXPECT_EQ(back, key);
  const SequenceSet wide = sample_set(100000, false);
  write_shard(path("w.tlmshard"), wide, key, 100000);
  expect_same(read_shard(path("w.tlmshard")), wide);
  EXPECT_GT(fs::file_size(path("w.tlmshard")), fs::file_size(path("n.tlmshard")));
}

TEST_F(ShardTest, DamagedFilesAreClearErrors) {
  write_shard(path("s.tlmshard"), sample_set(500, true), {1, 2, 3}, 500);
  const std::string bytes = read_file(path("s.tlmshard"));
  write_file_atomic(path("cut"), bytes.substr(0, bytes.size() - 20));
  EXPECT_THROW(read_shard(path("cut")), Error);
  try {
    read_shard(path("cut"));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated or corrupt"), std::string::npos) << e.what();
  }
  write_file_atomic(path("foreign"), "hello world, this is not a shard at all");
  try {
    read_shard(path("foreign"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a tlm token shard"), std::string::npos);
  }
}

TEST_F(ShardTest, CacheReusesAndRebuildsWhenSourceOrVocabularyChange) {
  const std::string src = path("corpus.txt");
  std::ofstream(src) << "some text\n";
  int builds = 0;
  auto build = [&] {
    ++builds;
    return sample_set(100, false);
  };
  const ShardKey key{7, hash_file(src), hash_string("max_len=128")};
  bool built = false;
  cached_sequences(path("cache"), "corpus", key, 100, build, &built);
  EXPECT_TRUE(built);
  const SequenceSet again = cached_sequences(path("cache"), "corpus", key, 100, build, &built);
  EXPECT_FALSE(built);
  EXPECT_EQ(builds, 1);
  expect_same(again, sample_set(100, false));
  std::ofstream(src, std::ios::app) << "more\n";  // the source changes
  const ShardKey changed{7, hash_file(src), key.params_hash};
  EXPECT_NE(changed.source_hash, key.source_hash);
  cached_sequences(path("cache"), "corpus", changed, 100, build, &built);
  EXPECT_TRUE(built);
  cached_sequences(path("cache"), "corpus", ShardKey{8, changed.source_hash, key.params_hash}, 100, build, &built);
  EXPECT_TRUE(built) << "another vocabulary must rebuild";
  EXPECT_EQ(builds, 3);
  // A damaged cache file is rebuilt, not trusted.
  for (const auto& e : fs::directory_iterator(path("cache"))) fs::resize_file(e.path(), 30);
  cached_sequences(path("cache"), "corpus", key, 100, build, &built);
  EXPECT_TRUE(built);
}

}  // namespace
}  // namespace tlm

namespace tlm {
namespace {

TEST_F(ShardTest, CorpusAndLabeledSequencesGoThroughTheCache) {
  std::vector<std::string> t{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "pos", "neg"};
  const Tokenizer tok(Vocab::from_tokens(t, "v"), {});
  {
    std::ofstream(path("c.txt")) << "hello world\nworld hello hello\n\n\n";
    std::ofstream(path("d.csv")) << "pos,hello\nneg,world world\nmaybe,hello\n";
    std::ofstream(path("classes.txt")) << "neg\npos\n";
  }
  CorpusSequencesOptions o;
  o.max_len = 8;
  o.cache_dir = path("cache");
  const CorpusSequences first = corpus_sequences({path("c.txt")}, tok, o);
  EXPECT_FALSE(first.from_cache);
  EXPECT_EQ(first.stats.rows, 2);
  ASSERT_EQ(first.set.size(), 2);
  const CorpusSequences second = corpus_sequences({path("c.txt")}, tok, o);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.set.ids, first.set.ids);
  o.max_len = 4;  // other parameters: another shard
  EXPECT_FALSE(corpus_sequences({path("c.txt")}, tok, o).from_cache);
  const ReaderOptions r{.format = Format::kCsv, .classes_path = path("classes.txt"), .on_bad_row = OnBadRow::kSkip};
  const CorpusSequences l1 = labeled_sequences(path("d.csv"), tok, r, 8, path("cache"));
  const CorpusSequences l2 = labeled_sequences(path("d.csv"), tok, r, 8, path("cache"));
  EXPECT_FALSE(l1.from_cache);
  EXPECT_TRUE(l2.from_cache);
  EXPECT_EQ(l1.stats.skipped, 1);
  EXPECT_EQ(l2.stats.skipped, 1) << "a cached answer still reports the rows its build skipped";
  EXPECT_EQ(l2.stats.skip_reasons.at("unknown label"), 1);
  EXPECT_EQ(l2.set.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(l2.set.label_names, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(std::vector<int32_t>(l2.set.sequence(1).begin(), l2.set.sequence(1).end()),
            (std::vector<int32_t>{2, 6, 6, 3}));
}

}  // namespace
}  // namespace tlm
