// The embedded default data built from Debian packages: parsers on synthetic input, and the
// whole build on the installed packages (skipped where they are not installed).
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tlm/check.h"
#include "tlm/embedded.h"
#include "tlm/readers.h"

namespace tlm {
namespace {

namespace fs = std::filesystem;

TEST(Embedded, DictdNumbersAndCleaning) {
  EXPECT_EQ(dictd_number("A", "x"), 0);
  EXPECT_EQ(dictd_number("BA", "x"), 64);
  EXPECT_EQ(dictd_number("/", "x"), 63);
  EXPECT_THROW(dictd_number("A*", "x"), Error);
  EXPECT_EQ(clean_dict_text("Abate \\A*bate\"\\, v. t.\n   To {lessen}; to reduce.\n   [1913 Webster]\n\n"),
            "Abate \\A*bate\"\\, v. t. To lessen; to reduce.");
}

TEST(Embedded, DictdIndexAndDataFile) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("tlm_dictd_{}", ::getpid());
  fs::create_directories(dir);
  const std::string body = "00-database-info\nmeta\nApple\n  A fruit.\n  [1913 Webster]\nPear\n  Another {fruit}.\n";
  gzFile f = gzopen((dir / "d.dict.dz").c_str(), "wb");
  gzwrite(f, body.data(), static_cast<unsigned>(body.size()));
  gzclose(f);
  // "Apple..." at 22 ("W"), 34 bytes ("i"); "Pear..." at 56 ("4"), 24 bytes ("Y")
  std::ofstream(dir / "d.index") << "00-database-info\tA\tW\napple\tW\ti\nApple\tW\ti\npear\t4\tY\n";
  const auto entries = read_dictd((dir / "d.index").string(), (dir / "d.dict.dz").string());
  ASSERT_EQ(entries.size(), 2u) << "metadata skipped, shared entries read once";
  EXPECT_EQ(entries[0].text, "Apple A fruit.");
  EXPECT_EQ(entries[1].text, "Pear Another fruit.");
  std::ofstream(dir / "bad.index") << "apple\tW\tzzzz\n";
  EXPECT_THROW(read_dictd((dir / "bad.index").string(), (dir / "d.dict.dz").string()), Error);
  fs::remove_all(dir);
}

TEST(Embedded, FortunesAndWordNetLines) {
  EXPECT_EQ(split_fortunes("One\nliner.\n%\n%\nTwo  -- Author\n%\n"),
            (std::vector<std::string>{"One liner.", "Two -- Author"}));
  const fs::path p = fs::temp_directory_path() / fmt::format("tlm_wn_{}", ::getpid());
  std::ofstream(p) << "  1 This software and database is being provided\n"
                      "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived  \n"
                      "02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; \"the dog barked\"\n";
  const auto syn = read_wordnet_data(p.string());
  ASSERT_EQ(syn.size(), 2u);
  EXPECT_EQ(wordnet_lexnames()[syn[0].lexfile], "noun.Tops");
  EXPECT_EQ(wordnet_lexnames()[syn[1].lexfile], "noun.animal");
  EXPECT_EQ(syn[1].gloss, "a member of the genus Canis; \"the dog barked\"");
  fs::remove(p);
}

std::vector<std::string> lines(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(Embedded, BuildsFromTheInstalledPackages) {
  if (!fs::exists("/usr/share/wordnet/data.noun") || !fs::exists("/usr/share/dictd/gcide.index") ||
      !fs::exists("/usr/share/games/fortunes/fortunes") || !fs::exists("/usr/bin/bible")) {
    GTEST_SKIP() << "the embedded data packages are not installed (scripts/install-deps.sh installs them)";
  }
  const fs::path out = fs::temp_directory_path() / fmt::format("tlm_embedded_{}", ::getpid());
  const EmbeddedReport r = build_embedded_data(out.string(), {});
  EXPECT_TRUE(r.missing_sources.empty());
  EXPECT_EQ(r.corpus_documents.at("bible-kjv"), 1189);  // chapters of the KJV
  EXPECT_GT(r.corpus_documents.at("gcide"), 100000);
  EXPECT_GT(r.corpus_documents.at("foldoc"), 10000);
  EXPECT_EQ(r.task_labels.at("wordnet-supersense"), 26);  // noun.Tops .. noun.time
  EXPECT_EQ(r.task_train.at("wordnet-supersense") + r.task_test.at("wordnet-supersense"), 82115);  // WordNet 3.0 nouns
  for (const char* task : {"wordnet-supersense", "fortunes"}) {
    const fs::path dir = out / "tasks" / task;
    ReaderOptions o{.format = Format::kCsv, .classes_path = (dir / "classes.txt").string()};
    const LabeledData train = read_labeled((dir / "train.csv").string(), o);
    const LabeledData test = read_labeled((dir / "test.csv").string(), o);
    EXPECT_EQ(static_cast<int64_t>(train.examples.size()), r.task_train.at(task)) << task;
    EXPECT_EQ(static_cast<int64_t>(test.examples.size()), r.task_test.at(task)) << task;
    // Shuffled: the sources come grouped by label, the files must not be.
    int changes = 0;
    for (size_t i = 1; i < train.examples.size(); ++i)
      changes += train.examples[i].label != train.examples[i - 1].label;
    EXPECT_GT(changes, static_cast<int>(train.examples.size() / 2)) << task;
    // No test text in the pre-training corpus built from the same package.
    const auto corpus =
        lines(out / "corpora" / (std::string(task) == "fortunes" ? "fortunes.txt" : "wordnet-glosses.txt"));
    const std::set<std::string> docs(corpus.begin(), corpus.end());
    for (const auto& ex : test.examples)
      ASSERT_FALSE(docs.count(ex.text)) << task << " test text in corpus: " << ex.text;
  }
  fs::remove_all(out);
}

}  // namespace
}  // namespace tlm
