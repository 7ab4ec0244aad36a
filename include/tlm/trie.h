// A byte trie for longest-prefix matching of word pieces: one hash probe per byte, no
// substring hashing, so WordPiece's greedy longest match is a single walk along the word.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace tlm {

class ByteTrie {
 public:
  ByteTrie();
  void insert(std::string_view key, int32_t value);
  // The value of the longest key that is a prefix of s, and its length; {-1, 0} if none.
  std::pair<int32_t, size_t> longest_prefix(std::string_view s) const;

 private:
  int32_t child(int32_t node, unsigned char byte) const;
  int32_t add_child(int32_t node, unsigned char byte);
  void grow();
  // Open addressing over (node << 8 | byte) -> child node; key and child share a slot so a
  // probe touches one cache line.
  struct Slot {
    uint64_t key;
    int32_t child;
  };
  std::vector<Slot> slots_;
  std::vector<int32_t> values_;  // per node: the value of the key ending there, or -1
  uint64_t mask_;
  size_t used_ = 0;
};

}  // namespace tlm
