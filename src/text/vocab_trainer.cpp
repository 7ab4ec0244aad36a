#include "tlm/vocab_trainer.h"

#include <algorithm>
#include <queue>
#include <unordered_map>

#include "text/unicode.h"
#include "tlm/check.h"
#include "tlm/file_io.h"

namespace tlm {

namespace {

// bert-base-uncased's layout of the first 104 ids.
std::vector<std::string> special_layout() {
  std::vector<std::string> t{"[PAD]"};
  for (int i = 0; i < 99; ++i) t.push_back("[unused" + std::to_string(i) + "]");
  for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[MASK]"}) t.push_back(s);
  return t;
}

Vocab normalizer_vocab() { return Vocab::from_tokens(special_layout(), "(vocabulary trainer)"); }

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

}  // namespace

VocabTrainer::VocabTrainer(const VocabTrainOptions& options)
    : options_(options), normalizer_(normalizer_vocab(), TokenizerOptions{.lowercase = options.lowercase}) {
  TLM_CHECK(options.size > 104 + 2, "vocabulary size {} leaves no room beyond the 104 special and unused ids",
            options.size);
  TLM_CHECK(options.max_words >= 1000, "max_words {} is too small", options.max_words);
}

void VocabTrainer::add_text(std::string_view text) {
  normalizer_.for_each_word(text, [&](std::string_view w) {
    ++stats_.words_seen;
    auto it = counts_.find(w);
    if (it != counts_.end()) {
      ++it->second;
      return;
    }
    counts_.emplace(std::string(w), 1);
    if (static_cast<int64_t>(counts_.size()) > options_.max_words) prune();
  });
}

void VocabTrainer::prune() {
  // Bounded memory (fastText's way): drop words seen fewer than a threshold that doubles until
  // the table is back under three quarters of its cap.
  while (static_cast<int64_t>(counts_.size()) > options_.max_words * 3 / 4) {
    stats_.prune_threshold *= 2;
    for (auto it = counts_.begin(); it != counts_.end();) {
      if (it->second < stats_.prune_threshold) {
        ++stats_.pruned_words;
        it = counts_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

std::vector<std::string> VocabTrainer::train(VocabTrainStats* stats_out) {
  stats_.distinct_words = static_cast<int64_t>(counts_.size());
  TLM_CHECK(!counts_.empty(),
            "the corpus has no words to learn a vocabulary from (empty, or read in the wrong format?)");
  std::vector<std::string> tokens = special_layout();
  TokenMap ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids[tokens[i]] = static_cast<int32_t>(i);
  auto intern = [&](const std::string& t) {
    auto [it, added] = ids.emplace(t, static_cast<int32_t>(tokens.size()));
    if (added) tokens.push_back(t);
    return it->second;
  };

  // The alphabet: the most frequent characters, each as a word start and as "##" continuation.
  std::unordered_map<char32_t, int64_t> char_counts;
  for (const auto& [w, n] : counts_) {
    for (size_t i = 0; i < w.size();) char_counts[unicode::decode(w, i)] += n;
  }
  std::vector<std::pair<int64_t, char32_t>> chars;
  for (auto [c, n] : char_counts) chars.emplace_back(n, c);
  std::sort(chars.begin(), chars.end(),
            [](auto a, auto b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  if (static_cast<int32_t>(chars.size()) > options_.limit_alphabet) chars.resize(options_.limit_alphabet);
  std::sort(chars.begin(), chars.end(), [](auto a, auto b) { return a.second < b.second; });
  std::unordered_map<char32_t, std::pair<int32_t, int32_t>> char_ids;  // start, continuation
  for (auto [n, c] : chars) {
    std::string s;
    unicode::append_utf8(s, c);
    const int32_t start = intern(s);
    std::string continuation("##");
    continuation.append(s);
    char_ids[c] = {start, intern(continuation)};
  }
  stats_.alphabet = static_cast<int64_t>(chars.size());

  // Words as piece sequences; words with a character outside the alphabet cannot be pieced.
  struct Word {
    std::vector<int32_t> pieces;
    int64_t count;
  };
  std::vector<Word> words;
  for (const auto& [w, n] : counts_) {
    Word word{{}, n};
    bool ok = true;
    for (size_t i = 0; i < w.size() && ok;) {
      auto it = char_ids.find(unicode::decode(w, i));
      if (it == char_ids.end()) {
        ok = false;
      } else {
        word.pieces.push_back(word.pieces.empty() ? it->second.first : it->second.second);
      }
    }
    if (ok && word.pieces.size() > 1 && word.pieces.size() <= 100) words.push_back(std::move(word));
  }
  // Deterministic word order (the hash map's is not).
  std::sort(words.begin(), words.end(), [](const Word& a, const Word& b) { return a.pieces < b.pieces; });

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
  auto add_pairs = [&](int32_t wi, int64_t sign) {
    const Word& w = words[wi];
    for (size_t i = 0; i + 1 < w.pieces.size(); ++i) {
      const uint64_t k = pair_key(w.pieces[i], w.pieces[i + 1]);
      pair_counts[k] += sign * w.count;
      if (sign > 0) pair_words[k].push_back(wi);
    }
  };
  for (int32_t wi = 0; wi < static_cast<int32_t>(words.size()); ++wi) add_pairs(wi, +1);
  std::priority_queue<std::pair<int64_t, uint64_t>> queue;
  for (auto [k, n] : pair_counts) queue.emplace(n, k);

  std::vector<int32_t> last_merge(words.size(), -1);
  while (static_cast<int32_t>(tokens.size()) < options_.size && !queue.empty()) {
    auto [count, key] = queue.top();
    queue.pop();
    const int64_t current = pair_counts[key];
    if (current != count) {  // stale entry: requeue with the current count
      if (current > 0) queue.emplace(current, key);
      continue;
    }
    if (count < options_.min_frequency) break;
    const int32_t a = static_cast<int32_t>(key >> 32), b = static_cast<int32_t>(key & 0xFFFFFFFFu);
    const std::string& tb = tokens[b];
    std::string joined = tokens[a];
    joined.append(tb, tb.rfind("##", 0) == 0 ? 2 : 0);
    const int32_t merged = intern(joined);
    ++stats_.merges;
    const int32_t stamp = static_cast<int32_t>(stats_.merges);
    std::vector<int32_t> affected = std::move(pair_words[key]);
    pair_words.erase(key);
    std::vector<uint64_t> touched;
    for (int32_t wi : affected) {
      if (last_merge[wi] == stamp) continue;  // listed twice
      last_merge[wi] = stamp;
      Word& w = words[wi];
      add_pairs(wi, -1);
      std::vector<int32_t> next;
      next.reserve(w.pieces.size());
      for (size_t i = 0; i < w.pieces.size(); ++i) {
        if (i + 1 < w.pieces.size() && w.pieces[i] == a && w.pieces[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(w.pieces[i]);
        }
      }
      w.pieces.swap(next);
      add_pairs(wi, +1);
      for (size_t i = 0; i + 1 < w.pieces.size(); ++i) touched.push_back(pair_key(w.pieces[i], w.pieces[i + 1]));
    }
    pair_counts.erase(key);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) queue.emplace(pair_counts[k], k);
  }
  if (stats_out) *stats_out = stats_;
  return tokens;
}

void save_vocab(const std::string& path, const std::vector<std::string>& tokens) {
  std::string text;
  for (const auto& t : tokens) {
    text += t;
    text += '\n';
  }
  write_file_atomic(path, text);
}

}  // namespace tlm
