// A WordPiece vocabulary (Hugging Face's vocab.txt: one token per line, line number = id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tlm/trie.h"

namespace tlm {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Vocab {
 public:
  // A Hugging Face vocab.txt: one token per line, line number = id. Throws naming the file.
  static Vocab load(const std::string& path);
  static Vocab from_tokens(std::vector<std::string> tokens, const std::string& source);

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token(int32_t id) const { return tokens_[id]; }
  const std::vector<std::string>& tokens() const { return tokens_; }
  int32_t find(std::string_view token) const;  // -1 if absent
  // Ids of the special tokens; throws naming the vocabulary if one is missing.
  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t mask_id() const { return mask_; }
  bool is_special(int32_t id) const { return id == pad_ || id == unk_ || id == cls_ || id == sep_ || id == mask_; }
  // FNV-1a over the tokens and their order: identifies the vocabulary in caches and manifests.
  uint64_t hash() const { return hash_; }
  const std::string& source() const { return source_; }

  // Word-start pieces and "##" continuation pieces (keys without the "##").
  const ByteTrie& starts() const { return starts_; }
  const ByteTrie& continuations() const { return continuations_; }

 private:
  std::vector<std::string> tokens_;
  TokenMap all_;
  ByteTrie starts_, continuations_;
  int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
  uint64_t hash_ = 0;
  std::string source_;
};

}  // namespace tlm
