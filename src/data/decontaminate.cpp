#include "tlm/decontaminate.h"

#include <unordered_map>

#include "text/unicode.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"
#include "tlm/tokenizer.h"

namespace tlm {

namespace {

// One punctuation character (any script: ’ and — as well as ' and -): not a word.
bool is_punctuation_word(std::string_view w) {
  size_t i = 0;
  const char32_t c = unicode::decode(w, i);
  return i == w.size() && unicode::is_punctuation(c);
}

// BERT's bracketed special tokens ([CLS], [SEP], [MASK], [PAD], [UNK], [unusedN]) are markup, not
// words: FewRel marks its entities with [unused0]..[unused3], and the Wikipedia sentence it came
// from has none. Replaced by a space, so the words around them stay apart.
std::string without_special_tokens(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '[') {
      const size_t close = text.find(']', i);
      if (close != std::string_view::npos) {
        const std::string_view inner = text.substr(i + 1, close - i - 1);
        const bool unused = inner.starts_with("unused") && inner.size() > 6 &&
                            inner.find_first_not_of("0123456789", 6) == std::string_view::npos;
        if (unused || inner == "CLS" || inner == "SEP" || inner == "MASK" || inner == "PAD" || inner == "UNK") {
          out += ' ';
          i = close + 1;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

// Words of a text as the uncased BERT normaliser and pre-tokeniser see them, hashed.
class WordHasher {
 public:
  WordHasher()
      : tok_(Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, "(decontamination)"),
             TokenizerOptions{.lowercase = true}) {}
  std::vector<uint64_t> operator()(std::string_view text) const {
    std::vector<uint64_t> words;
    const std::string plain = text.find('[') == std::string_view::npos ? std::string() : without_special_tokens(text);
    tok_.for_each_word(plain.empty() ? text : std::string_view(plain), [&](std::string_view w) {
      if (!is_punctuation_word(w)) words.push_back(hash_string(w));
    });
    return words;
  }

 private:
  Tokenizer tok_;
};

uint64_t key_of(const uint64_t* words, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < n; ++i) h = hash_combine(h, words[i]);
  return h;
}

struct Pattern {
  std::vector<uint64_t> words;
  size_t task = 0;
  std::string text;
};

}  // namespace

DecontaminationReport remove_test_texts(const std::string& corpus, const ReaderOptions& options,
                                        const std::vector<TestTexts>& tests, const std::string& out) {
  const WordHasher words_of;
  std::vector<Pattern> patterns;
  std::unordered_map<uint64_t, std::vector<size_t>> inside;  // key of the first words -> patterns
  std::unordered_map<uint64_t, std::vector<size_t>> whole;   // key of all words -> short patterns
  std::unordered_map<uint64_t, char> seen;
  for (size_t t = 0; t < tests.size(); ++t) {
    for (const auto& text : tests[t].texts) {
      std::vector<uint64_t> w = words_of(text);
      if (w.empty()) continue;
      const uint64_t all = key_of(w.data(), w.size());
      if (!seen.emplace(all, 1).second) continue;  // the same text of another task or row
      const size_t id = patterns.size();
      const bool long_text = w.size() >= static_cast<size_t>(kMinWordsInside);
      (long_text ? inside[key_of(w.data(), kMinWordsInside)] : whole[all]).push_back(id);
      patterns.push_back({std::move(w), t, text});
    }
  }
  DecontaminationReport r;
  r.test_texts = static_cast<int64_t>(patterns.size());
  std::vector<char> found(patterns.size(), 0);
  std::string kept;
  auto matches = [&](const std::vector<uint64_t>& doc, size_t id, size_t at) {
    const auto& p = patterns[id].words;
    return at + p.size() <= doc.size() && std::equal(p.begin(), p.end(), doc.begin() + static_cast<long>(at));
  };
  r.skipped = read_corpus(corpus, options, [&](Example&& ex) {
                ++r.documents;
                const std::vector<uint64_t> doc = words_of(ex.text);
                long hit = -1;
                if (auto it = whole.find(key_of(doc.data(), doc.size())); it != whole.end() && !doc.empty()) {
                  for (size_t id : it->second) {
                    if (patterns[id].words == doc) hit = static_cast<long>(id);
                  }
                }
                for (size_t at = 0; hit < 0 && at + kMinWordsInside <= doc.size(); ++at) {
                  const auto it = inside.find(key_of(doc.data() + at, kMinWordsInside));
                  if (it == inside.end()) continue;
                  for (size_t id : it->second) {
                    if (matches(doc, id, at)) {
                      hit = static_cast<long>(id);
                      break;
                    }
                  }
                }
                if (hit >= 0) {
                  ++r.removed;
                  found[hit] = 1;
                  ++r.removed_by_task[tests[patterns[hit].task].task];
                  if (r.examples.size() < 5)
                    r.examples.push_back(fmt::format("line {}: {}", ex.line, patterns[hit].text));
                  return;
                }
                for (char& c : ex.text) {
                  if (c == '\n' || c == '\r') c = ' ';
                }
                kept += ex.text;
                kept += '\n';
              }).skipped;
  for (char f : found) r.test_texts_found += f;
  write_file_atomic(out, kept);
  return r;
}

}  // namespace tlm
