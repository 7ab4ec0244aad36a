#include "tlm/readers.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/csv.h"
#include "data/line_reader.h"
#include "text/unicode.h"
#include "tlm/check.h"

namespace tlm {

namespace {

using nlohmann::json;

// Reports a bad row: throws under OnBadRow::kStop, else counts it with its reason.
class BadRows {
 public:
  BadRows(OnBadRow mode, ReadStats& stats) : mode_(mode), stats_(stats) {}
  void report(const std::string& where, const std::string& reason, const std::string& detail = "") {
    const std::string message = where + ": " + reason + (detail.empty() ? "" : ": " + detail);
    if (mode_ == OnBadRow::kStop) throw Error(message + " (--on-bad-row skip skips such rows and counts them)");
    ++stats_.skipped;
    ++stats_.skip_reasons[reason];
    if (stats_.first_skips.size() < 20) stats_.first_skips.push_back(message);
  }

 private:
  OnBadRow mode_;
  ReadStats& stats_;
};

std::string where(const std::string& path, int64_t line) { return fmt::format("{}:{}", path, line); }

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

// Empty string if the text is usable, else the reason it is not.
std::string text_problem(const std::string& text) {
  size_t bad = 0;
  if (!unicode::valid_utf8(text, &bad)) return fmt::format("invalid UTF-8 at byte {}", bad);
  if (blank(text)) return "empty text";
  return {};
}

// Delivers one document if its text is usable.
void deliver(Example&& ex, const std::string& path, BadRows& bad, ReadStats& stats,
             const std::function<void(Example&&)>& fn) {
  const std::string problem = text_problem(ex.text);
  if (!problem.empty()) {
    bad.report(where(path, ex.line), problem);
    return;
  }
  ++stats.rows;
  fn(std::move(ex));
}

std::vector<std::string> read_classes(const std::string& path) {
  LineReader in(path);
  std::vector<std::string> names;
  std::string line;
  std::map<std::string, int64_t> first_line;
  for (int64_t number = 1; in.next(line); ++number) {
    const size_t b = line.find_first_not_of(" \t"), e = line.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    std::string name = line.substr(b, e - b + 1);
    const auto [it, fresh] = first_line.emplace(name, number);
    if (!fresh) {
      throw Error(fmt::format("{}:{}: class \"{}\" is listed twice (first on line {}); each class once", path, number,
                              name, it->second));
    }
    names.push_back(std::move(name));
  }
  if (names.empty()) throw Error(path + ": the classes file lists no class");
  return names;
}

// Label names for a CSV format: the classes file if given (or a classes.txt beside the data),
// else the official names.
std::vector<std::string> csv_classes(const std::string& path, const ReaderOptions& o) {
  if (!o.classes_path.empty()) return read_classes(o.classes_path);
  const auto beside = std::filesystem::path(path).parent_path() / "classes.txt";
  if (o.format != Format::kCsv && std::filesystem::exists(beside)) return read_classes(beside.string());
  if (o.format == Format::kAgNews) return {"World", "Sports", "Business", "Sci/Tech"};
  if (o.format == Format::kDbpedia) {
    return {"Company",      "EducationalInstitution",
            "Artist",       "Athlete",
            "OfficeHolder", "MeanOfTransportation",
            "Building",     "NaturalPlace",
            "Village",      "Animal",
            "Plant",        "Album",
            "Film",         "WrittenWork"};
  }
  throw Error(path + ": format csv needs a classes file (--classes): one class name per line");
}

// A label cell: a class name from the list, or a 1-based index into it.
int32_t parse_label(const std::string& cell, const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == cell) return static_cast<int32_t>(i);
  }
  if (!cell.empty() && cell.find_first_not_of("0123456789") == std::string::npos && cell.size() < 9) {
    const int v = std::stoi(cell);
    if (v >= 1 && v <= static_cast<int>(names.size())) return v - 1;
  }
  return -1;
}

LabeledData read_csv_labeled(const std::string& path, const ReaderOptions& o) {
  LabeledData data;
  data.label_names = csv_classes(path, o);
  BadRows bad(o.on_bad_row, data.stats);
  CsvReader csv(path);
  std::vector<std::string> f;
  // A malformed quote throws even under kSkip: the rest of the file cannot be split reliably.
  while (csv.next(f)) {
    const std::string at = where(path, csv.record_line());
    const size_t want_min = o.format == Format::kAgNews ? 3 : 2, want_max = o.format == Format::kDbpedia ? 3 : want_min;
    if (f.size() < want_min || f.size() > want_max) {
      bad.report(
          at, "wrong column count",
          fmt::format("{} columns, expected {}", f.size(),
                      want_min == want_max ? std::to_string(want_min) : fmt::format("{} or {}", want_min, want_max)));
      continue;
    }
    Example ex;
    ex.line = csv.record_line();
    ex.label = parse_label(f[0], data.label_names);
    if (ex.label < 0) {
      bad.report(at, "unknown label", fmt::format("\"{}\" (known: {} classes)", f[0], data.label_names.size()));
      continue;
    }
    ex.text = o.format == Format::kAgNews ? f[1] + " " + f[2] : f.back();
    const std::string problem = text_problem(o.format == Format::kAgNews ? f[1] + f[2] : ex.text);
    if (!problem.empty()) {
      bad.report(at, problem);
      continue;
    }
    ++data.stats.rows;
    data.examples.push_back(std::move(ex));
  }
  return data;
}

// The first token position of an entity's first mention: [name, id, [[positions], ...]].
std::pair<int, int> entity_span(const json& e, size_t n_tokens) {
  if (!e.is_array() || e.size() < 3 || !e[2].is_array() || e[2].empty() || !e[2][0].is_array() || e[2][0].empty()) {
    throw Error("entity is not [name, id, [[positions]]]");
  }
  int lo = 1 << 30, hi = -1;
  for (const auto& p : e[2][0]) {
    if (!p.is_number_integer()) throw Error("entity position is not an integer");
    const int v = p.get<int>();
    if (v < 0 || static_cast<size_t>(v) >= n_tokens) throw Error(fmt::format("entity position {} out of range", v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

LabeledData read_fewrel(const std::string& path, const ReaderOptions& o) {
  LabeledData data;
  BadRows bad(o.on_bad_row, data.stats);
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(read_text(path));
  } catch (const json::exception& e) {  // parse_error, or out_of_range for overflowing numbers
    throw Error(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  if (!root.is_object()) throw Error(path + ": expected a JSON object mapping relation ids to instance lists");
  const auto& m = fewrel_markers();
  for (auto& [relation, instances] : root.items()) {
    if (!instances.is_array())
      throw Error(fmt::format("{}: relation {}: expected a list of instances", path, relation));
    const int32_t label = static_cast<int32_t>(data.label_names.size());
    data.label_names.push_back(relation);
    int64_t index = 0;
    for (const auto& inst : instances) {
      const std::string at = fmt::format("{}: relation {} instance {}", path, relation, index++);
      try {
        const auto& tokens = inst.at("tokens");
        if (!tokens.is_array() || tokens.empty()) throw Error("tokens is not a non-empty list");
        const auto [h0, h1] = entity_span(inst.at("h"), tokens.size());
        const auto [t0, t1] = entity_span(inst.at("t"), tokens.size());
        Example ex;
        ex.label = label;
        ex.line = index;
        for (size_t i = 0; i < tokens.size(); ++i) {
          if (!tokens[i].is_string()) throw Error("a token is not a string");
          auto add = [&](const std::string& s) {
            if (!ex.text.empty()) ex.text += ' ';
            ex.text += s;
          };
          const int p = static_cast<int>(i);
          if (p == h0) add(m[0]);
          if (p == t0) add(m[2]);
          add(tokens[i].get<std::string>());
          if (p == t1) add(m[3]);
          if (p == h1) add(m[1]);
        }
        const std::string problem = text_problem(ex.text);
        if (!problem.empty()) throw Error(problem);
        ++data.stats.rows;
        data.examples.push_back(std::move(ex));
      } catch (const json::exception& e) {
        bad.report(at, "malformed instance", e.what());
      } catch (const Error& e) {
        bad.report(at, "malformed instance", e.what());
      }
    }
  }
  return data;
}

}  // namespace

OnBadRow parse_on_bad_row(const std::string& name) {
  if (name == "stop") return OnBadRow::kStop;
  if (name == "skip") return OnBadRow::kSkip;
  throw Error(fmt::format("on_bad_row must be stop or skip, got \"{}\"", name));
}

const std::vector<std::string>& fewrel_markers() {
  static const std::vector<std::string> markers{"[unused0]", "[unused1]", "[unused2]", "[unused3]"};
  return markers;
}

Format parse_format(const std::string& name) {
  static const std::map<std::string, Format> formats{
      {"text", Format::kText},     {"paragraphs", Format::kParagraphs},
      {"jsonl", Format::kJsonl},   {"wikiextractor", Format::kWikiExtractor},
      {"agnews", Format::kAgNews}, {"dbpedia", Format::kDbpedia},
      {"csv", Format::kCsv},       {"fewrel", Format::kFewRel}};
  auto it = formats.find(name);
  if (it == formats.end()) {
    throw Error(
        fmt::format("unknown format \"{}\" (known: text, paragraphs, jsonl, wikiextractor, agnews, dbpedia, "
                    "csv, fewrel)",
                    name));
  }
  return it->second;
}

std::string format_name(Format f) {
  switch (f) {
    case Format::kText:
      return "text";
    case Format::kParagraphs:
      return "paragraphs";
    case Format::kJsonl:
      return "jsonl";
    case Format::kWikiExtractor:
      return "wikiextractor";
    case Format::kAgNews:
      return "agnews";
    case Format::kDbpedia:
      return "dbpedia";
    case Format::kCsv:
      return "csv";
    case Format::kFewRel:
      return "fewrel";
  }
  return "?";
}

ReadStats read_corpus(const std::string& path, const ReaderOptions& o, const std::function<void(Example&&)>& fn) {
  ReadStats stats;
  BadRows bad(o.on_bad_row, stats);
  LineReader in(path);
  std::string line;
  switch (o.format) {
    case Format::kText:
      while (in.next(line)) {
        if (blank(line)) continue;  // a blank line is no document
        deliver(Example{line, -1, in.line_number()}, path, bad, stats, fn);
      }
      break;
    case Format::kParagraphs: {
      Example doc;
      auto flush = [&] {
        if (!doc.text.empty()) deliver(std::move(doc), path, bad, stats, fn);
        doc = Example{};
      };
      while (in.next(line)) {
        if (blank(line)) {
          flush();
          continue;
        }
        if (doc.text.empty()) doc.line = in.line_number();
        if (!doc.text.empty()) doc.text += '\n';
        doc.text += line;
      }
      flush();
      break;
    }
    case Format::kJsonl:
      while (in.next(line)) {
        if (blank(line)) continue;
        const std::string at = where(path, in.line_number());
        json j;
        try {
          j = json::parse(line);
        } catch (const json::exception& e) {  // parse_error, or out_of_range for overflowing numbers
          bad.report(at, "invalid JSON", e.what());
          continue;
        }
        auto field = j.is_object() ? j.find(o.text_field) : j.end();
        if (!j.is_object() || field == j.end() || !field->is_string()) {
          bad.report(at, "missing text field", fmt::format("no string field \"{}\"", o.text_field));
          continue;
        }
        deliver(Example{field->get<std::string>(), -1, in.line_number()}, path, bad, stats, fn);
      }
      break;
    case Format::kWikiExtractor: {
      Example doc;
      bool inside = false, title_pending = false;
      while (in.next(line)) {
        if (line.rfind("<doc", 0) == 0) {
          if (inside)
            throw Error(fmt::format("{}: <doc> at line {} opened before </doc> of the document at line {}", path,
                                    in.line_number(), doc.line));
          inside = title_pending = true;
          doc = Example{{}, -1, in.line_number()};
        } else if (line == "</doc>") {
          if (!inside) throw Error(fmt::format("{}:{}: </doc> without <doc>", path, in.line_number()));
          inside = false;
          deliver(std::move(doc), path, bad, stats, fn);
        } else if (inside) {
          if (title_pending) {  // WikiExtractor repeats the title as the first line
            title_pending = false;
            continue;
          }
          if (blank(line)) continue;
          if (!doc.text.empty()) doc.text += "\n\n";
          doc.text += line;
        }
      }
      if (inside) throw Error(fmt::format("{}: the <doc> opened at line {} is never closed", path, doc.line));
      break;
    }
    default:
      throw Error(fmt::format("{}: format {} is a labeled dataset, not a corpus", path, format_name(o.format)));
  }
  return stats;
}

std::vector<int32_t> labels_of(const std::vector<Example>& examples) {
  std::vector<int32_t> labels;
  for (const auto& ex : examples) labels.push_back(ex.label);
  return labels;
}

LabeledData read_labeled(const std::string& path, const ReaderOptions& o) {
  switch (o.format) {
    case Format::kAgNews:
    case Format::kDbpedia:
    case Format::kCsv:
      return read_csv_labeled(path, o);
    case Format::kFewRel:
      return read_fewrel(path, o);
    default:
      throw Error(fmt::format("{}: format {} is a corpus, not a labeled dataset", path, format_name(o.format)));
  }
}

}  // namespace tlm
