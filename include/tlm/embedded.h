// The embedded default data, built from Debian packages the project's setup installs:
// corpora from dict-gcide (Webster 1913), bible-kjv, dict-foldoc and wordnet-base glosses, and
// two classification tasks: WordNet noun gloss -> supersense (lexicographer file) and fortune
// text -> category file (fortunes, fortunes-min). Task test texts are kept out of the corpora
// built from the same package, and every task file is shuffled (the sources come grouped).
//
// Layout written under the output folder (every file atomically):
//   corpora/{gcide,foldoc,bible-kjv,wordnet-glosses,fortunes}.txt   one document per line
//   tasks/{wordnet-supersense,fortunes}/{train,test}.csv            label,text (csv format)
//   tasks/{wordnet-supersense,fortunes}/classes.txt
//   manifest.json                                                   sources, versions, counts
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tlm {

struct EmbeddedOptions {
  uint64_t seed = 1;
  double test_share = 0.2;               // of each label's examples, held out as test
  int64_t min_examples_per_label = 100;  // smaller fortune categories are left out (and listed)
  std::string root = "/";                // where the Debian packages' files live (tests may redirect)
};

struct EmbeddedReport {
  std::map<std::string, int64_t> corpus_documents;  // corpus name -> documents
  std::map<std::string, int64_t> task_train, task_test, task_labels;
  std::vector<std::string> dropped_labels;   // "fortunes/pratchett: 1 examples"
  std::vector<std::string> missing_sources;  // packages not installed
};

EmbeddedReport build_embedded_data(const std::string& out_dir, const EmbeddedOptions& options);

// Pieces, exposed for tests.
struct DictEntry {
  std::string headword, text;
};
std::vector<DictEntry> read_dictd(const std::string& index_path, const std::string& dict_path);
int64_t dictd_number(const std::string& b64, const std::string& where);
std::string clean_dict_text(const std::string& raw);

struct WordNetSynset {
  std::string offset;
  int lexfile = -1;
  std::string gloss;
};
std::vector<WordNetSynset> read_wordnet_data(const std::string& path);
const std::vector<std::string>& wordnet_lexnames();  // index = lexicographer file number

std::map<std::string, std::vector<std::string>> read_fortune_files(const std::string& dir);
std::vector<std::string> split_fortunes(const std::string& content);

}  // namespace tlm
