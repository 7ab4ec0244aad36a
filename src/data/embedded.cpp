#include "tlm/embedded.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "data/line_reader.h"
#include "text/unicode.h"
#include "tlm/check.h"
#include "tlm/dataset.h"
#include "tlm/file_io.h"

namespace tlm {

namespace fs = std::filesystem;

namespace {

// One line per document: internal line breaks and runs of whitespace become single spaces.
std::string one_line(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string csv_field(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Text that a reader would accept: valid UTF-8 (bad bytes dropped) and not blank.
std::string usable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = unicode::decode(s, i);
    if (c != 0xFFFD) unicode::append_utf8(out, c);
  }
  return one_line(out);
}

void write_lines(const std::string& path, const std::vector<std::string>& docs) {
  std::string text;
  for (const auto& d : docs) {
    if (d.empty()) continue;
    text += d;
    text += '\n';
  }
  write_file_atomic(path, text);
}

struct Task {
  std::vector<std::string> labels;
  std::vector<std::pair<int32_t, std::string>> examples;  // label, text
};

// Seeded per-label split, shuffled rows, written as csv + classes.txt; returns the test texts.
std::set<std::string> write_task(const std::string& dir, const Task& task, const EmbeddedOptions& o,
                                 const std::string& name, EmbeddedReport& report) {
  fs::create_directories(dir);
  std::vector<int32_t> labels;
  for (const auto& [l, t] : task.examples) labels.push_back(l);
  std::vector<int64_t> count(task.labels.size());
  for (int32_t l : labels) ++count[l];
  Rng rng(o.seed);
  std::vector<std::vector<int64_t>> by(task.labels.size());
  for (size_t i = 0; i < labels.size(); ++i) by[labels[i]].push_back(static_cast<int64_t>(i));
  std::vector<int64_t> train, test;
  for (auto& list : by) {
    const auto order = shuffled_order(static_cast<int64_t>(list.size()), rng);
    const int64_t n_test = std::max<int64_t>(1, std::llround(o.test_share * static_cast<double>(list.size())));
    for (size_t k = 0; k < order.size(); ++k)
      (static_cast<int64_t>(k) < n_test ? test : train).push_back(list[order[k]]);
  }
  std::set<std::string> test_texts;
  for (auto [rows, file] : {std::pair{&train, "train.csv"}, std::pair{&test, "test.csv"}}) {
    const auto order = shuffled_order(static_cast<int64_t>(rows->size()), rng);  // the sources come grouped
    std::string csv;
    for (int64_t k : order) {
      const auto& [l, text] = task.examples[(*rows)[k]];
      csv += csv_field(task.labels[l]) + "," + csv_field(text) + "\n";
      if (rows == &test) test_texts.insert(text);
    }
    write_file_atomic(dir + "/" + file, csv);
  }
  std::string classes;
  for (const auto& l : task.labels) classes += l + "\n";
  write_file_atomic(dir + "/classes.txt", classes);
  report.task_train[name] = static_cast<int64_t>(train.size());
  report.task_test[name] = static_cast<int64_t>(test.size());
  report.task_labels[name] = static_cast<int64_t>(task.labels.size());
  return test_texts;
}

std::string package_version(const std::string& package) {
  std::string out;
  if (FILE* p = ::popen(("dpkg-query -W -f='${Version}' " + package + " 2>/dev/null").c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p)) out += buf;
    ::pclose(p);
  }
  return out.empty() ? "unknown" : out;
}

// The King James Bible, one chapter per document, from the bible-kjv program's plain output.
std::vector<std::string> read_bible_chapters() {
  std::vector<std::string> chapters;
  FILE* p = ::popen("bible -l0 'Gen1:1-Rev22:21' </dev/null 2>/dev/null", "r");
  if (!p) return chapters;
  std::string line, chapter;
  char buf[8192];
  while (std::fgets(buf, sizeof(buf), p)) {
    line = buf;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) continue;
    if (line[0] != ' ') {  // a "Book N" heading starts a chapter
      if (!chapter.empty()) chapters.push_back(chapter);
      chapter.clear();
      continue;
    }
    size_t i = line.find_first_not_of(' ');
    i = line.find_first_not_of("0123456789", i);  // drop the verse number
    if (i == std::string::npos) continue;
    if (!chapter.empty()) chapter += ' ';
    chapter += line.substr(line.find_first_not_of(' ', i));
  }
  if (!chapter.empty()) chapters.push_back(chapter);
  ::pclose(p);
  return chapters;
}

}  // namespace

int64_t dictd_number(const std::string& b64, const std::string& where) {
  static const std::string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int64_t v = 0;
  for (char c : b64) {
    const size_t d = digits.find(c);
    if (d == std::string::npos || v > (int64_t{1} << 50)) throw Error(where + ": bad dictd number \"" + b64 + "\"");
    v = v * 64 + static_cast<int64_t>(d);
  }
  return v;
}

std::string clean_dict_text(const std::string& raw) {
  // Drop the source tags on lines of their own ("[1913 Webster]", "[PJC]") and the {cross
  // reference} braces; keep everything else.
  std::string out, line;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t end = raw.find('\n', start);
    if (end == std::string::npos) end = raw.size();
    line = raw.substr(start, end - start);
    start = end + 1;
    const size_t b = line.find_first_not_of(" \t"), e = line.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    if (line[b] == '[' && line[e] == ']' && line.find('[', b + 1) == std::string::npos) continue;
    for (char c : line.substr(b, e - b + 1)) {
      if (c != '{' && c != '}') out.push_back(c);
    }
    out.push_back(' ');
  }
  return one_line(out);
}

std::vector<DictEntry> read_dictd(const std::string& index_path, const std::string& dict_path) {
  const std::string dict = read_text(dict_path);
  LineReader index(index_path);
  std::vector<DictEntry> entries;
  std::set<std::pair<int64_t, int64_t>> seen;
  std::string line;
  while (index.next(line)) {
    const std::string where = fmt::format("{}:{}", index_path, index.line_number());
    const size_t t1 = line.find('\t'), t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos) throw Error(where + ": expected headword<TAB>offset<TAB>length");
    const std::string head = line.substr(0, t1);
    if (head.rfind("00-", 0) == 0 || head.rfind("00database", 0) == 0) continue;  // the database's own metadata
    const size_t t3 = line.find('\t', t2 + 1);
    const int64_t off = dictd_number(line.substr(t1 + 1, t2 - t1 - 1), where);
    const int64_t len = dictd_number(line.substr(t2 + 1, t3 == std::string::npos ? t3 : t3 - t2 - 1), where);
    if (off < 0 || len < 0 || static_cast<uint64_t>(off + len) > dict.size()) {
      throw Error(
          fmt::format("{}: entry [{}, {}) lies outside {} ({} bytes)", where, off, off + len, dict_path, dict.size()));
    }
    if (!seen.insert({off, len}).second) continue;  // several headwords share one entry
    entries.push_back({head, clean_dict_text(dict.substr(static_cast<size_t>(off), static_cast<size_t>(len)))});
  }
  return entries;
}

const std::vector<std::string>& wordnet_lexnames() {
  static const std::vector<std::string> names{"adj.all",          "adj.pert",           "adv.all",
                                              "noun.Tops",        "noun.act",           "noun.animal",
                                              "noun.artifact",    "noun.attribute",     "noun.body",
                                              "noun.cognition",   "noun.communication", "noun.event",
                                              "noun.feeling",     "noun.food",          "noun.group",
                                              "noun.location",    "noun.motive",        "noun.object",
                                              "noun.person",      "noun.phenomenon",    "noun.plant",
                                              "noun.possession",  "noun.process",       "noun.quantity",
                                              "noun.relation",    "noun.shape",         "noun.state",
                                              "noun.substance",   "noun.time",          "verb.body",
                                              "verb.change",      "verb.cognition",     "verb.communication",
                                              "verb.competition", "verb.consumption",   "verb.contact",
                                              "verb.creation",    "verb.emotion",       "verb.motion",
                                              "verb.perception",  "verb.possession",    "verb.social",
                                              "verb.stative",     "verb.weather",       "adj.ppl"};
  return names;
}

std::vector<WordNetSynset> read_wordnet_data(const std::string& path) {
  LineReader in(path);
  std::vector<WordNetSynset> out;
  std::string line;
  while (in.next(line)) {
    if (line.empty() || line[0] == ' ') continue;  // the licence header lines start with spaces
    const std::string where = fmt::format("{}:{}", path, in.line_number());
    const size_t bar = line.find(" | ");
    const size_t sp1 = line.find(' '), sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (bar == std::string::npos || sp2 == std::string::npos) throw Error(where + ": not a WordNet data line");
    WordNetSynset s;
    s.offset = line.substr(0, sp1);
    const std::string lex = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (lex.size() != 2 || !std::isdigit(static_cast<unsigned char>(lex[0])) ||
        !std::isdigit(static_cast<unsigned char>(lex[1]))) {
      throw Error(where + ": bad lexicographer file number \"" + lex + "\"");
    }
    s.lexfile = std::stoi(lex);
    if (s.lexfile >= static_cast<int>(wordnet_lexnames().size())) throw Error(where + ": unknown lexicographer file");
    s.gloss = one_line(line.substr(bar + 3));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> split_fortunes(const std::string& content) {
  std::vector<std::string> out;
  std::string cur;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    const std::string line = content.substr(start, end - start);
    start = end + 1;
    if (line == "%") {
      if (!one_line(cur).empty()) out.push_back(one_line(cur));
      cur.clear();
    } else {
      cur += line;
      cur += '\n';
    }
  }
  if (!one_line(cur).empty()) out.push_back(one_line(cur));
  return out;
}

std::map<std::string, std::vector<std::string>> read_fortune_files(const std::string& dir) {
  std::map<std::string, std::vector<std::string>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || e.is_symlink() || name.find('.') != std::string::npos) continue;  // .dat, .u8
    for (auto& f : split_fortunes(read_file(e.path().string()))) out[name].push_back(usable(f));
  }
  return out;
}

EmbeddedReport build_embedded_data(const std::string& out_dir, const EmbeddedOptions& o) {
  EmbeddedReport report;
  const fs::path root(o.root);
  fs::create_directories(fs::path(out_dir) / "corpora");
  nlohmann::json sources = nlohmann::json::object();
  auto corpus = [&](const std::string& name, const std::vector<std::string>& docs, const std::string& package) {
    write_lines((fs::path(out_dir) / "corpora" / (name + ".txt")).string(), docs);
    report.corpus_documents[name] = static_cast<int64_t>(docs.size());
    sources[name] = {{"package", package}, {"version", package_version(package)}, {"documents", docs.size()}};
  };
  for (auto [name, package] : {std::pair{"gcide", "dict-gcide"}, std::pair{"foldoc", "dict-foldoc"}}) {
    const fs::path index = root / "usr/share/dictd" / (std::string(name) + ".index");
    const fs::path dict = root / "usr/share/dictd" / (std::string(name) + ".dict.dz");
    if (!fs::exists(index) || !fs::exists(dict)) {
      report.missing_sources.push_back(package);
      continue;
    }
    std::vector<std::string> docs;
    for (auto& e : read_dictd(index.string(), dict.string())) docs.push_back(usable(e.text));
    corpus(name, docs, package);
  }
  if (o.root == "/") {
    auto chapters = read_bible_chapters();
    if (chapters.empty()) {
      report.missing_sources.push_back("bible-kjv");
    } else {
      for (auto& c : chapters) c = usable(c);
      corpus("bible-kjv", chapters, "bible-kjv-text");
    }
  }

  // WordNet: the noun supersense task; the corpus gets every gloss except the task's test glosses.
  const fs::path wn = root / "usr/share/wordnet";
  if (fs::exists(wn / "data.noun")) {
    Task task;
    std::map<int, int32_t> label_of;
    const auto nouns = read_wordnet_data((wn / "data.noun").string());
    for (const auto& s : nouns) {
      if (!label_of.count(s.lexfile)) label_of[s.lexfile] = 0;
    }
    for (auto& [lex, id] : label_of) {
      id = static_cast<int32_t>(task.labels.size());
      task.labels.push_back(wordnet_lexnames()[lex]);
    }
    for (const auto& s : nouns) task.examples.emplace_back(label_of[s.lexfile], usable(s.gloss));
    const auto test =
        write_task((fs::path(out_dir) / "tasks/wordnet-supersense").string(), task, o, "wordnet-supersense", report);
    std::vector<std::string> glosses;
    for (const char* pos : {"data.noun", "data.verb", "data.adj", "data.adv"}) {
      if (!fs::exists(wn / pos)) continue;
      for (const auto& s : read_wordnet_data((wn / pos).string())) {
        std::string g = usable(s.gloss);
        if (!test.count(g)) glosses.push_back(std::move(g));
      }
    }
    corpus("wordnet-glosses", glosses, "wordnet-base");
  } else {
    report.missing_sources.push_back("wordnet-base");
  }

  // Fortunes: text -> category file, for categories with enough fortunes.
  const auto fortunes = read_fortune_files((root / "usr/share/games/fortunes").string());
  if (!fortunes.empty()) {
    Task task;
    for (const auto& [category, texts] : fortunes) {
      if (static_cast<int64_t>(texts.size()) < o.min_examples_per_label) {
        report.dropped_labels.push_back(fmt::format("fortunes/{}: {} examples", category, texts.size()));
        continue;
      }
      const int32_t label = static_cast<int32_t>(task.labels.size());
      task.labels.push_back(category);
      for (const auto& t : texts) {
        if (!t.empty()) task.examples.emplace_back(label, t);
      }
    }
    const auto test = write_task((fs::path(out_dir) / "tasks/fortunes").string(), task, o, "fortunes", report);
    std::vector<std::string> docs;
    for (const auto& [category, texts] : fortunes) {
      for (const auto& t : texts) {
        if (!test.count(t)) docs.push_back(t);
      }
    }
    corpus("fortunes", docs, "fortunes");
  } else {
    report.missing_sources.push_back("fortunes");
  }

  nlohmann::json manifest = {
      {"format", "tlm-embedded-data"},
      {"version", 1},
      {"seed", o.seed},
      {"test_share", o.test_share},
      {"min_examples_per_label", o.min_examples_per_label},
      {"corpora", sources},
      {"tasks", {{"train", report.task_train}, {"test", report.task_test}, {"labels", report.task_labels}}},
      {"dropped_labels", report.dropped_labels},
      {"missing_sources", report.missing_sources}};
  write_file_atomic((fs::path(out_dir) / "manifest.json").string(), manifest.dump(2) + "\n");
  return report;
}

}  // namespace tlm
