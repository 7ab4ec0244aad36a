// Tokenizer rules on a small hand-made vocabulary (the bert-base-uncased comparison against
// Hugging Face itself is tests/text/tokenizer_vs_hf.py).
#include <gtest/gtest.h>

#include "tlm/check.h"
#include "tlm/tokenizer.h"

namespace tlm {
namespace {

Vocab small_vocab() {
  return Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "##a", "##ff",
                             "aff", "able", "!", "a", "b", "##b", "cafe", "北", "the"},
                            "small");
}

std::vector<int32_t> enc(const Tokenizer& t, const std::string& s) { return t.encode(s); }

TEST(Tokenizer, GreedyLongestMatchWithContinuations) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(enc(t, "unaffable"), (std::vector<int32_t>{2, 5, 6, 7, 3}));  // un ##aff ##able
  EXPECT_EQ(enc(t, "UNAFFABLE!"), (std::vector<int32_t>{2, 5, 6, 7, 12, 3}));
  EXPECT_EQ(enc(t, "abb"), (std::vector<int32_t>{2, 13, 15, 15, 3}));  // a ##b ##b
}

TEST(Tokenizer, WordsWithoutSegmentationAreOneUnk) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(enc(t, "unx the"), (std::vector<int32_t>{2, 1, 18, 3}));  // "un" matched, then "##x" fails
}

TEST(Tokenizer, OverlongWordsAreUnk) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(enc(t, std::string(100, 'b')).size(), 102u);  // 100 chars: b ##b ... still split
  EXPECT_EQ(enc(t, std::string(101, 'b')), (std::vector<int32_t>{2, 1, 3}));
}

TEST(Tokenizer, NormalisationCleansLowercasesStripsAccentsAndSplitsCjk) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(t.normalize("Caf\xC3\xA9\x07\tX"), "cafe x");  // é -> e, BEL dropped, tab -> space
  EXPECT_EQ(t.normalize("a\xE5\x8C\x97"
                        "b"),
            "a \xE5\x8C\x97 b");  // 北 padded with spaces
  EXPECT_EQ(enc(t, "CAF\xC3\x89 \xE5\x8C\x97"), (std::vector<int32_t>{2, 16, 17, 3}));
  const Tokenizer cased(small_vocab(), {.lowercase = false});
  EXPECT_EQ(cased.normalize("Caf\xC3\xA9"), "Caf\xC3\xA9");
}

TEST(Tokenizer, InvalidUtf8IsDroppedNotFatal) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(t.normalize("a\xFF\xFE"
                        "b"),
            "ab");
}

TEST(Tokenizer, LiteralSpecialTokensAreMatched) {
  const Tokenizer t(small_vocab(), {});
  EXPECT_EQ(enc(t, "a[MASK]b"), (std::vector<int32_t>{2, 13, 4, 14, 3}));
}

TEST(Tokenizer, TruncationKeepsClsAndSep) {
  const Tokenizer t(small_vocab(), {.max_len = 4});
  EXPECT_EQ(enc(t, "a b a b a"), (std::vector<int32_t>{2, 13, 14, 3}));
  EXPECT_EQ(enc(t, ""), (std::vector<int32_t>{2, 3}));
}

TEST(Vocab, MissingSpecialTokensAndFilesAreClearErrors) {
  try {
    Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]"}, "v.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v.txt: the vocabulary has no [MASK] token"), std::string::npos);
  }
  EXPECT_THROW(Vocab::load("/nonexistent/vocab.txt"), Error);
}

TEST(Vocab, HashIdentifiesContentAndOrder) {
  const Vocab a = small_vocab();
  auto tokens = a.tokens();
  std::swap(tokens[5], tokens[6]);
  EXPECT_NE(a.hash(), Vocab::from_tokens(tokens, "b").hash());
  EXPECT_EQ(a.hash(), small_vocab().hash());
}

}  // namespace
}  // namespace tlm

namespace tlm {
namespace {

TEST(Tokenizer, AddedTokensAreMatchedLiterally) {
  auto tokens = small_vocab().tokens();
  tokens.push_back("[unused0]");
  const Tokenizer t(Vocab::from_tokens(tokens, "v"), {.added_tokens = {"[unused0]"}});
  EXPECT_EQ(t.encode("a [unused0] b[unused0]"), (std::vector<int32_t>{2, 13, 19, 14, 19, 3}));
  EXPECT_THROW(Tokenizer(small_vocab(), {.added_tokens = {"[unused9]"}}), Error);
}

}  // namespace
}  // namespace tlm
