// Readers: real files from ../shared/data (row counts checked against the files' documented
// sizes; skipped with a message where the data is absent) and every kind of broken input.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "temp_dir.h"
#include "tlm/check.h"
#include "tlm/readers.h"

namespace tlm {
namespace {

namespace fs = std::filesystem;

std::string shared_data() { return std::string(TLM_SOURCE_DIR) + "/../shared/data"; }

#define REQUIRE_SHARED_DATA() \
  if (!fs::exists(shared_data() + "/README.md")) GTEST_SKIP() << "../shared/data is not beside this checkout"

class ReaderTest : public testing::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    std::ofstream(path(name), std::ios::binary) << content;
    return path(name);
  }
  std::string write_gz(const std::string& name, const std::string& content) {
    gzFile f = gzopen(path(name).c_str(), "wb");
    gzwrite(f, content.data(), static_cast<unsigned>(content.size()));
    gzclose(f);
    return path(name);
  }
  std::vector<Example> corpus(const std::string& file, Format f, ReadStats* stats = nullptr,
                              OnBadRow mode = OnBadRow::kStop) {
    std::vector<Example> docs;
    ReaderOptions o;
    o.format = f;
    o.on_bad_row = mode;
    const ReadStats s = read_corpus(file, o, [&](Example&& e) { docs.push_back(std::move(e)); });
    if (stats) *stats = s;
    return docs;
  }
};

std::map<int, int> per_label(const LabeledData& d) {
  std::map<int, int> m;
  for (const auto& e : d.examples) ++m[e.label];
  return m;
}

TEST_F(ReaderTest, RealAgNewsCountsMatchTheFiles) {
  REQUIRE_SHARED_DATA();
  ReaderOptions o;
  o.format = Format::kAgNews;
  const LabeledData test = read_labeled(shared_data() + "/agnews/test.csv", o);
  EXPECT_EQ(test.examples.size(), 7600u);
  EXPECT_EQ(test.stats.skipped, 0);
  for (auto [label, n] : per_label(test)) EXPECT_EQ(n, 1900) << label;
  EXPECT_EQ(test.label_names, (std::vector<std::string>{"World", "Sports", "Business", "Sci/Tech"}));
  const LabeledData train = read_labeled(shared_data() + "/agnews/train-first-10429.csv", o);
  EXPECT_EQ(train.examples.size(), 10429u);
  EXPECT_EQ(per_label(train), (std::map<int, int>{{0, 2630}, {1, 2452}, {2, 2594}, {3, 2753}}));
  // text = title + " " + description, as HF's ag_news
  EXPECT_EQ(test.examples[0].text.rfind("Fears for T N pension after talks Unions representing", 0), 0u)
      << test.examples[0].text;
}

TEST_F(ReaderTest, RealDbpediaAndFewRelCountsMatchTheFiles) {
  REQUIRE_SHARED_DATA();
  ReaderOptions o;
  o.format = Format::kDbpedia;
  const LabeledData db = read_labeled(shared_data() + "/dbpedia/subset-a.csv", o);
  EXPECT_EQ(db.examples.size(), 5000u);
  EXPECT_EQ(db.label_names.size(), 14u);
  EXPECT_EQ(per_label(db).size(), 14u);
  o.format = Format::kFewRel;
  const LabeledData fr = read_labeled(shared_data() + "/fewrel/val_wiki.json", o);
  EXPECT_EQ(fr.label_names.size(), 16u);
  EXPECT_EQ(fr.examples.size(), 16u * 700u);
  for (auto [label, n] : per_label(fr)) EXPECT_EQ(n, 700);
  for (const auto& m : fewrel_markers()) EXPECT_NE(fr.examples[0].text.find(m), std::string::npos);
}

TEST_F(ReaderTest, RealWikipediaJsonlGzAndWikiText) {
  REQUIRE_SHARED_DATA();
  ReaderOptions o;
  o.format = Format::kJsonl;
  const std::string wiki = shared_data() + "/wikipedia/enwiki-2015-part-aa.jsonl.gz";
  // The file holds articles whose text is empty: a strict read names the first one ...
  expect_error([&] { read_corpus(wiki, o, [](Example&&) {}); }, "enwiki-2015-part-aa.jsonl.gz:2347: empty text");
  // ... and a skipping read counts them; every one of the 6,514 articles is accounted for.
  o.on_bad_row = OnBadRow::kSkip;
  int64_t docs = 0;
  const ReadStats s = read_corpus(wiki, o, [&](Example&&) { ++docs; });
  EXPECT_EQ(docs, s.rows);
  EXPECT_EQ(s.rows + s.skipped, 6514);
  EXPECT_GT(s.rows, 6000);
  EXPECT_EQ(s.skip_reasons.size(), 1u);
  EXPECT_EQ(s.skip_reasons.count("empty text"), 1u);
  const auto lines = corpus(shared_data() + "/wikitext-2/wiki.valid.raw", Format::kText);
  int64_t non_blank = 0;
  std::ifstream in(shared_data() + "/wikitext-2/wiki.valid.raw");
  for (std::string l; std::getline(in, l);) non_blank += l.find_first_not_of(" \t\r") != std::string::npos;
  EXPECT_EQ(static_cast<int64_t>(lines.size()), non_blank);
}

TEST_F(ReaderTest, PlainTextParagraphsAndWikiExtractor) {
  const std::string p = write("p.txt", "first para\nline two\n\n\nsecond\r\n\nthird");
  const auto paras = corpus(p, Format::kParagraphs);
  ASSERT_EQ(paras.size(), 3u);
  EXPECT_EQ(paras[0].text, "first para\nline two");
  EXPECT_EQ(paras[1].line, 5);
  EXPECT_EQ(paras[2].text, "third");
  const std::string w = write("w.txt",
                              "<doc id=\"1\" url=\"u\" title=\"Anarchism\">\nAnarchism\n\nAnarchism is a philosophy."
                              "\nSecond paragraph.\n</doc>\n<doc id=\"2\" url=\"v\" title=\"B\">\nB\nBody.\n</doc>\n");
  const auto docs = corpus(w, Format::kWikiExtractor);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "Anarchism is a philosophy.\n\nSecond paragraph.");
  EXPECT_EQ(docs[1].text, "Body.");
  expect_error([&] { corpus(write("open.txt", "<doc id=\"1\">\nT\ntext\n"), Format::kWikiExtractor); },
               "opened at line 1 is never closed");
}

TEST_F(ReaderTest, BrokenCsvRowsStopWithFileAndLine) {
  ReaderOptions o;
  o.format = Format::kAgNews;
  expect_error([&] { read_labeled(write("cols.csv", "\"1\",\"t\",\"d\"\n\"2\",\"only two\"\n"), o); },
               "cols.csv:2: wrong column count: 2 columns, expected 3");
  expect_error([&] { read_labeled(write("quote.csv", "\"1\",\"t\",\"d\"\n\"2\",\"open,\"d\n"), o); },
               "quote.csv:2: unexpected character 'd' after a closing quote");
  expect_error([&] { read_labeled(write("unterm.csv", "\"1\",\"t\",\"d\"\n\"2\",\"never closed\n,more\n"), o); },
               "unterm.csv:2: unterminated quoted field");
  expect_error([&] { read_labeled(write("label.csv", "\"1\",\"t\",\"d\"\n\"9\",\"t\",\"d\"\n"), o); },
               "label.csv:2: unknown label: \"9\"");
  expect_error([&] { read_labeled(write("utf.csv", "\"1\",\"t\xC3\",\"d\"\n"), o); }, "utf.csv:1: invalid UTF-8");
  expect_error([&] { read_labeled(write("empty.csv", "\"1\",\"\",\" \"\n"), o); }, "empty.csv:1: empty text");
  // a quoted field across lines is one record, reported at its first line
  const LabeledData d = read_labeled(write("multi.csv", "\"1\",\"t\",\"line one\nline two\"\n\"5\",\"x\",\"y\"\n"),
                                     ReaderOptions{.format = Format::kAgNews, .on_bad_row = OnBadRow::kSkip});
  ASSERT_EQ(d.examples.size(), 1u);
  EXPECT_EQ(d.examples[0].text, "t line one\nline two");
  EXPECT_EQ(d.stats.skipped, 1);
  EXPECT_EQ(d.stats.first_skips[0], (dir_ / "multi.csv").string() + ":3: unknown label: \"5\" (known: 4 classes)");
}

TEST_F(ReaderTest, SkipModeCountsEveryBadRowAndKeepsTheGoodOnes) {
  const std::string p = write("mixed.csv",
                              "\"1\",\"a\",\"b\"\n\"2\",\"c\"\n\"3\",\"e\",\"f\"\n\"7\",\"g\",\"h\"\n\"4\",\"\",\"\"\n"
                              "\"2\",\"\xFF\",\"x\"\n\"4\",\"i\",\"j\"\n");
  const LabeledData d = read_labeled(p, ReaderOptions{.format = Format::kAgNews, .on_bad_row = OnBadRow::kSkip});
  EXPECT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.stats.rows, 3);
  EXPECT_EQ(d.stats.skipped, 4);
  EXPECT_EQ(d.stats.skip_reasons.at("wrong column count"), 1);
  EXPECT_EQ(d.stats.skip_reasons.at("unknown label"), 1);
  EXPECT_EQ(d.stats.skip_reasons.at("empty text"), 1);
  EXPECT_EQ(d.stats.skip_reasons.at("invalid UTF-8 at byte 0"), 1);
  EXPECT_EQ(d.stats.rows + d.stats.skipped, 7);  // every row accounted for
}

TEST_F(ReaderTest, GenericCsvWithClassesFile) {
  const std::string classes = write("classes.txt", "neg\npos\n\n");
  const std::string p = write("d.csv", "pos,great film\nneg,\"dull, long\"\n2,\"by index\"\nmaybe,x\n");
  ReaderOptions o{.format = Format::kCsv, .classes_path = classes, .on_bad_row = OnBadRow::kSkip};
  const LabeledData d = read_labeled(p, o);
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.examples[0].label, 1);
  EXPECT_EQ(d.examples[1].text, "dull, long");
  EXPECT_EQ(d.examples[2].label, 1);
  EXPECT_EQ(d.stats.skipped, 1);
  expect_error([&] { read_labeled(p, ReaderOptions{.format = Format::kCsv}); }, "needs a classes file");
}

TEST_F(ReaderTest, JsonlBadLines) {
  const std::string p = write("c.jsonl",
                              "{\"id\": 1, \"text\": \"good\"}\n{not json}\n{\"title\": \"no text\"}\n"
                              "{\"text\": \"\"}\n\n{\"text\": \"also good\"}\n");
  expect_error([&] { corpus(p, Format::kJsonl); }, "c.jsonl:2: invalid JSON");
  ReadStats s;
  const auto docs = corpus(p, Format::kJsonl, &s, OnBadRow::kSkip);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1].line, 6);
  EXPECT_EQ(s.skipped, 3);
  EXPECT_EQ(s.skip_reasons.at("missing text field"), 1);
}

TEST_F(ReaderTest, GzipIsTransparentAndTruncationIsAnError) {
  std::string content;
  for (int i = 0; i < 20000; ++i) content += fmt::format("{{\"text\": \"document number {} with some words\"}}\n", i);
  const std::string gz = write_gz("c.jsonl.gz", content);
  EXPECT_EQ(corpus(gz, Format::kJsonl).size(), 20000u);
  std::string bytes;
  {
    std::ifstream in(gz, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string cut = write("cut.jsonl.gz", bytes.substr(0, bytes.size() / 2));
  expect_error([&] { corpus(cut, Format::kJsonl, nullptr, OnBadRow::kSkip); }, "truncated or corrupt gzip");
  expect_error([&] { corpus((dir_ / "missing.txt").string(), Format::kText); }, "missing.txt: cannot open");
}

TEST_F(ReaderTest, FewRelMarkersAndMalformedInstances) {
  const std::string p = write("f.json",
                              R"({"P1": [{"tokens": ["Paris", "is", "in", "France", "."], "h": ["paris", "Q1", [[0]]],
                                   "t": ["france", "Q2", [[3]]]},
                                  {"tokens": ["x"], "h": ["x", "Q", [[5]]], "t": ["x", "Q", [[0]]]}],
                          "P2": [{"tokens": ["New", "York", "and", "Boston"], "h": ["ny", "Q3", [[0, 1]]],
                                   "t": ["b", "Q4", [[3]]]}]})");
  expect_error([&] { read_labeled(p, ReaderOptions{.format = Format::kFewRel}); },
               "relation P1 instance 1: malformed instance: entity position 5 out of range");
  const LabeledData d = read_labeled(p, ReaderOptions{.format = Format::kFewRel, .on_bad_row = OnBadRow::kSkip});
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[0].text, "[unused0] Paris [unused1] is in [unused2] France [unused3] .");
  EXPECT_EQ(d.examples[1].text, "[unused0] New York [unused1] and [unused2] Boston [unused3]");
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"P1", "P2"}));
  expect_error([&] { read_labeled(write("bad.json", "{\"P1\": [}"), ReaderOptions{.format = Format::kFewRel}); },
               "bad.json: invalid JSON");
}

TEST(Formats, UnknownFormatIsAClearError) {
  EXPECT_EQ(parse_format("agnews"), Format::kAgNews);
  try {
    parse_format("xml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown format \"xml\""), std::string::npos);
  }
}

}  // namespace
}  // namespace tlm
