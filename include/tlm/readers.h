// Readers for corpora and classification datasets. Every reader streams, reads gzip files
// transparently, and names the source file and line in every error. A bad row stops the read
// (default) or, with OnBadRow::kSkip, is skipped and counted, never silently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tlm {

enum class Format {
  kText,           // plain text, one document per line
  kParagraphs,     // plain text, documents separated by blank lines
  kJsonl,          // JSON Lines with a text field (wikimedia/wikipedia: id, url, title, text)
  kWikiExtractor,  // <doc id=.. url=.. title=..> ... </doc>
  kAgNews,         // CSV "class","title","description"; text = title + " " + description
  kDbpedia,        // CSV "class","title","content" or "class","content"; text = content
  kCsv,            // CSV label,text; labels named in a classes file (or 1-based indices into it)
  kFewRel,         // JSON: relation -> [{tokens, h, t}], entity markers around head and tail
};

Format parse_format(const std::string& name);  // throws listing the known names
std::string format_name(Format f);

enum class OnBadRow { kStop, kSkip };
OnBadRow parse_on_bad_row(const std::string& name);  // "stop" or "skip"; throws otherwise

struct ReaderOptions {
  Format format = Format::kText;
  std::string text_field = "text";  // JSON Lines
  std::string classes_path;         // CSV formats: one class name per line (optional for agnews/dbpedia)
  OnBadRow on_bad_row = OnBadRow::kStop;
};

struct Example {
  std::string text;
  int32_t label = -1;  // index into the dataset's label names; -1 for corpora
  int64_t line = 0;    // first line of the row in its file (1-based)
};

struct ReadStats {
  int64_t rows = 0;     // rows (documents, examples) delivered
  int64_t skipped = 0;  // bad rows skipped under OnBadRow::kSkip
  std::map<std::string, int64_t> skip_reasons;
  std::vector<std::string> first_skips;  // the first few skipped rows, as file:line: reason
};

struct LabeledData {
  std::vector<std::string> label_names;
  std::vector<Example> examples;
  ReadStats stats;
};

// The marker strings FewRel texts carry around head and tail entities; they are vocabulary
// tokens of bert-base-uncased ([unused0..3]) and tokenised as single ids.
const std::vector<std::string>& fewrel_markers();

// Streams documents of a corpus format (kText, kParagraphs, kJsonl, kWikiExtractor).
ReadStats read_corpus(const std::string& path, const ReaderOptions& options, const std::function<void(Example&&)>& fn);
// Reads a whole classification file (kAgNews, kDbpedia, kCsv, kFewRel).
LabeledData read_labeled(const std::string& path, const ReaderOptions& options);
// The label of each example, in order (what the sample draws of run_data.h work on).
std::vector<int32_t> labels_of(const std::vector<Example>& examples);

}  // namespace tlm
