#include <gtest/gtest.h>

#include <set>

#include "tlm/check.h"
#include "tlm/vocab_trainer.h"

namespace tlm {
namespace {

std::vector<std::string> train_on(const std::vector<std::string>& texts, VocabTrainOptions o,
                                  VocabTrainStats* st = nullptr) {
  VocabTrainer t(o);
  for (const auto& s : texts) t.add_text(s);
  return t.train(st);
}

TEST(VocabTrainer, BertLayoutMergesAndDeterminism) {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("The lower lowest newer newest wider widest. Lowering!");
  const auto v = train_on(texts, {.size = 140, .min_frequency = 2});
  EXPECT_EQ(v[0], "[PAD]");
  EXPECT_EQ(v[1], "[unused0]");
  EXPECT_EQ(v[100], "[UNK]");
  EXPECT_EQ(v[101], "[CLS]");
  EXPECT_EQ(v[102], "[SEP]");
  EXPECT_EQ(v[103], "[MASK]");
  EXPECT_EQ(v.size(), 140u);
  const std::set<std::string> all(v.begin(), v.end());
  EXPECT_EQ(all.size(), v.size()) << "no duplicates";
  EXPECT_TRUE(all.count("low") || all.count("lowe") || all.count("lower")) << "frequent words are merged";
  EXPECT_TRUE(all.count("##st") || all.count("##est")) << "continuations are merged with ##";
  EXPECT_EQ(v, train_on(texts, {.size = 140, .min_frequency = 2}));
  // The result tokenizes the training text without [UNK].
  const Tokenizer tok(Vocab::from_tokens(v, "trained"), {});
  for (int32_t id : tok.encode(texts[0])) EXPECT_NE(id, 100);
}

TEST(VocabTrainer, StopsWhenNoPairIsFrequentEnough) {
  VocabTrainStats st;
  const auto v = train_on({"ab"}, {.size = 5000, .min_frequency = 2}, &st);
  EXPECT_LT(v.size(), 5000u);
  EXPECT_EQ(st.merges, 0);
}

TEST(VocabTrainer, MemoryIsBoundedByPruningRareWords) {
  VocabTrainer t({.size = 300, .max_words = 1000});
  for (int i = 0; i < 5000; ++i) t.add_text("common word" + std::string(" unique") + std::to_string(i));
  VocabTrainStats st;
  t.train(&st);
  EXPECT_LE(st.distinct_words, 1000);
  EXPECT_GT(st.pruned_words, 0);
  EXPECT_GT(st.prune_threshold, 1);
}

TEST(VocabTrainer, ImpossibleSizeIsAnError) { EXPECT_THROW(VocabTrainer({.size = 100}), Error); }

}  // namespace
}  // namespace tlm
