// Test texts kept out of corpora: what is removed, what is kept, what is counted.
#include <gtest/gtest.h>

#include "temp_dir.h"
#include "tlm/check.h"
#include "tlm/decontaminate.h"
#include "tlm/file_io.h"

namespace tlm::testing {
namespace {

class Decontaminate : public TempDirTest {};

TEST_F(Decontaminate, DocumentsHoldingATestTextGoTheRestStayAsTheyTokenize) {
  write_file_atomic(
      path("corpus.txt"),
      "An old entry: A Dog barks at the CAT, loudly!\n"  // the test text inside, case and punctuation aside
      "the dog barks at the mouse\n"                     // four of its words, not all of them
      "Red fox.\n"                                       // a short test text, the whole document
      "the red fox runs\n"                               // a short test text inside: kept
      "Crème brûlée is a dessert\n");                    // accents: matched as uncased BERT sees them
  const std::vector<TestTexts> tests = {{"animals", {"dog barks at the cat", "red fox"}},
                                        {"food", {"creme brulee is a dessert", "dog barks at the cat"}}};
  const DecontaminationReport r = remove_test_texts(path("corpus.txt"), {}, tests, path("clean.txt"));
  EXPECT_EQ(r.documents, 5);
  EXPECT_EQ(r.removed, 3);
  EXPECT_EQ(r.test_texts, 3);  // the text two tasks share counts once
  EXPECT_EQ(r.test_texts_found, 3);
  EXPECT_EQ(r.removed_by_task.at("animals"), 2);
  EXPECT_EQ(r.removed_by_task.at("food"), 1);
  EXPECT_EQ(read_file(path("clean.txt")), "the dog barks at the mouse\nthe red fox runs\n");
  ASSERT_FALSE(r.examples.empty());
  EXPECT_EQ(r.examples[0], "line 1: dog barks at the cat");
}

TEST_F(Decontaminate, MultiLineDocumentsBecomeOneLineEach) {
  write_file_atomic(path("paras.txt"), "first line\nof a paragraph\n\nsecond paragraph\n");
  const DecontaminationReport r =
      remove_test_texts(path("paras.txt"), ReaderOptions{.format = Format::kParagraphs}, {}, path("clean.txt"));
  EXPECT_EQ(r.documents, 2);
  EXPECT_EQ(r.removed, 0);
  EXPECT_EQ(read_file(path("clean.txt")), "first line of a paragraph\nsecond paragraph\n");
}

TEST_F(Decontaminate, EntityMarkersAndUnicodePunctuationAreNotWords) {
  // A FewRel test sentence carries [unused0]..[unused3] around its entities; the Wikipedia
  // sentence it came from has none. Typographic quotes and dashes are punctuation too.
  write_file_atomic(path("corpus.txt"),
                    "Born in Paris, Marie Curie moved to Warsaw \u2014 in 1891.\n"
                    "Marie Curie moved to Berlin in the spring\n"
                    "They said \u201cshe didn\u2019t stay\u201d and left.\n");
  const std::vector<TestTexts> tests = {
      {"fewrel", {"[unused0] Marie Curie [unused1] moved to [unused2] Warsaw [unused3]"}},
      {"quotes", {"she didn't stay"}}};
  const DecontaminationReport r = remove_test_texts(path("corpus.txt"), {}, tests, path("clean.txt"));
  EXPECT_EQ(r.removed, 2);
  EXPECT_EQ(r.test_texts_found, 2);
  EXPECT_EQ(read_file(path("clean.txt")), "Marie Curie moved to Berlin in the spring\n");
}

TEST_F(Decontaminate, BadRowsAreSkippedOnlyWhenAskedAndCounted) {
  write_file_atomic(path("corpus.jsonl"),
                    "{\"text\": \"a kept document\"}\n{\"text\": \"\"}\n{\"text\": \"another\"}\n");
  EXPECT_THROW(remove_test_texts(path("corpus.jsonl"), ReaderOptions{.format = Format::kJsonl}, {}, path("a.txt")),
               Error);
  const DecontaminationReport r = remove_test_texts(
      path("corpus.jsonl"), ReaderOptions{.format = Format::kJsonl, .on_bad_row = OnBadRow::kSkip}, {}, path("b.txt"));
  EXPECT_EQ(r.documents, 2);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(read_file(path("b.txt")), "a kept document\nanother\n");
}

}  // namespace
}  // namespace tlm::testing
