#include "tlm/tokenizer.h"

#include <algorithm>

#include "text/unicode.h"
#include "tlm/check.h"

namespace tlm {

namespace {

bool is_ascii_punct(unsigned char c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

bool is_continuation_byte(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

Tokenizer::Tokenizer(Vocab vocab, TokenizerOptions options)
    : vocab_(std::move(vocab)),
      options_(options),
      strip_accents_(options.strip_accents < 0 ? options.lowercase : options.strip_accents == 1) {
  TLM_CHECK(options.max_len == 0 || options.max_len >= 2, "max_len {} leaves no room for [CLS] and [SEP]",
            options.max_len);
  for (int32_t id : {vocab_.pad_id(), vocab_.unk_id(), vocab_.cls_id(), vocab_.sep_id(), vocab_.mask_id()}) {
    literal_.emplace_back(vocab_.token(id), id);
  }
  for (const std::string& t : options.added_tokens) {
    const int32_t id = vocab_.find(t);
    if (id < 0) throw Error(fmt::format("{}: the vocabulary has no token \"{}\"", vocab_.source(), t));
    if (!t.empty()) literal_.emplace_back(t, id);
  }
  std::stable_sort(literal_.begin(), literal_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [t, id] : literal_) literal_first_byte_[static_cast<unsigned char>(t[0])] = true;
}

std::string Tokenizer::normalize(std::string_view text) const {
  // ASCII bytes take a fast path (no CJK, no accents, single-byte lowercase); each maximal run
  // of non-ASCII characters goes through the general path. ASCII characters have combining
  // class 0, so the runs are independent for NFD's canonical ordering.
  std::string out(text.size(), '\0');  // ASCII output never outgrows its input
  size_t o = 0;
  std::vector<char32_t> cps, tmp;
  const bool lower = options_.lowercase;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\t' || c == '\n' || c == '\r' || c == ' ') {
        out[o++] = ' ';
      } else if (c >= 0x20 && c != 0x7F) {  // control characters (and NUL) are dropped
        out[o++] = static_cast<char>(lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
      }
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
    out.resize(o);
    normalize_run(text.substr(i, end - i), out, cps, tmp);
    o = out.size();
    out.resize(o + (text.size() - end));
    i = end;
  }
  out.resize(o);
  return out;
}

void Tokenizer::normalize_run(std::string_view run, std::string& out, std::vector<char32_t>& cps,
                              std::vector<char32_t>& tmp) const {
  // In the order of HF's BertNormalizer: clean, CJK padding, strip accents, lowercase.
  cps.clear();
  for (size_t i = 0; i < run.size();) {
    const char32_t c = unicode::decode(run, i);
    if (c == 0xFFFD || unicode::is_control(c)) continue;
    if (unicode::is_whitespace(c)) {
      cps.push_back(' ');
    } else if (unicode::is_cjk(c)) {
      cps.push_back(' ');
      cps.push_back(c);
      cps.push_back(' ');
    } else {
      cps.push_back(c);
    }
  }
  if (strip_accents_) {
    unicode::nfd(cps, tmp);
    cps.clear();
    for (char32_t c : tmp) {
      if (!unicode::is_nonspacing_mark(c)) cps.push_back(c);
    }
  }
  if (options_.lowercase) {
    tmp.clear();
    for (char32_t c : cps) unicode::to_lower(c, tmp);
    cps.swap(tmp);
  }
  for (char32_t c : cps) unicode::append_utf8(out, c);
}

namespace {

// Calls fn(word) for each word of normalised text: split on whitespace, punctuation isolated.
template <typename Fn>
void for_each_word(std::string_view s, Fn&& fn) {
  size_t start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > start) fn(s.substr(start, end - start));
  };
  while (i < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == 0x0B || b == 0x0C) {
        flush(i);
        start = ++i;
      } else if (is_ascii_punct(b)) {
        flush(i);
        fn(s.substr(i, 1));
        start = ++i;
      } else {
        ++i;
      }
      continue;
    }
    const size_t at = i;
    const char32_t c = unicode::decode(s, i);
    if (unicode::is_whitespace(c)) {
      flush(at);
      start = i;
    } else if (unicode::is_punctuation(c)) {
      flush(at);
      fn(s.substr(at, i - at));
      start = i;
    }
  }
  flush(s.size());
}

}  // namespace

void Tokenizer::for_each_word(std::string_view text, const std::function<void(std::string_view)>& fn) const {
  tlm::for_each_word(normalize(text), fn);
}

void Tokenizer::word_pieces(std::string_view word, std::vector<int32_t>& ids) const {
  size_t chars = 0;
  for (unsigned char c : word) chars += !is_continuation_byte(c);
  if (static_cast<int>(chars) > options_.max_chars_per_word) {
    ids.push_back(vocab_.unk_id());
    return;
  }
  // Most words are a vocabulary entry as a whole: one hash lookup instead of a trie walk (a
  // word never holds '#', a punctuation character, so it cannot hit a "##" entry).
  if (const int32_t whole = vocab_.find(word); whole >= 0) {
    ids.push_back(whole);
    return;
  }
  const size_t first = ids.size();
  size_t start = 0;
  while (start < word.size()) {
    // Greedy longest match: the longest vocabulary piece that prefixes the rest of the word.
    const ByteTrie& trie = start == 0 ? vocab_.starts() : vocab_.continuations();
    const auto [id, length] = trie.longest_prefix(word.substr(start));
    if (id < 0) {  // no segmentation: the whole word is unknown
      ids.resize(first);
      ids.push_back(vocab_.unk_id());
      return;
    }
    ids.push_back(id);
    start += length;
  }
}

void Tokenizer::encode_pieces(std::string_view text, std::vector<int32_t>& ids) const {
  // Special and added tokens written literally in the raw text ("[MASK]", "[SEP]", ...) are
  // matched before normalisation and become their ids, as Hugging Face's added tokens do.
  auto pieces = [&](std::string_view part) {
    for_each_word(normalize(part), [&](std::string_view w) { word_pieces(w, ids); });
  };
  size_t start = 0, i = 0;
  while (i < text.size()) {
    if (!literal_first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const auto match = std::find_if(literal_.begin(), literal_.end(),
                                    [&](const auto& lit) { return text.substr(i, lit.first.size()) == lit.first; });
    if (match == literal_.end()) {
      ++i;
      continue;
    }
    pieces(text.substr(start, i - start));
    ids.push_back(match->second);
    i += match->first.size();
    start = i;
  }
  pieces(text.substr(start));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids{vocab_.cls_id()};
  encode_pieces(text, ids);
  if (options_.max_len > 0 && static_cast<int>(ids.size()) > options_.max_len - 1) ids.resize(options_.max_len - 1);
  ids.push_back(vocab_.sep_id());
  return ids;
}

}  // namespace tlm
