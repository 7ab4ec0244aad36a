#include "tlm/trie.h"

namespace tlm {

namespace {
constexpr uint64_t kEmpty = ~uint64_t{0};
uint64_t mix(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 17; }
}  // namespace

ByteTrie::ByteTrie() : slots_(1024, Slot{kEmpty, -1}), values_{-1}, mask_(1023) {}

int32_t ByteTrie::child(int32_t node, unsigned char byte) const {
  const uint64_t key = (static_cast<uint64_t>(node) << 8) | byte;
  for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.key == key) return s.child;
    if (s.key == kEmpty) return -1;
  }
}

int32_t ByteTrie::add_child(int32_t node, unsigned char byte) {
  if ((used_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = (static_cast<uint64_t>(node) << 8) | byte;
  uint64_t i = mix(key) & mask_;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == key) return slots_[i].child;
  slots_[i] = {key, static_cast<int32_t>(values_.size())};
  values_.push_back(-1);
  ++used_;
  return slots_[i].child;
}

void ByteTrie::grow() {
  std::vector<Slot> old(slots_.size() * 2, Slot{kEmpty, -1});
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    uint64_t i = mix(s.key) & mask_;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void ByteTrie::insert(std::string_view key, int32_t value) {
  int32_t node = 0;
  for (unsigned char b : key) node = add_child(node, b);
  values_[node] = value;
}

std::pair<int32_t, size_t> ByteTrie::longest_prefix(std::string_view s) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    node = child(node, static_cast<unsigned char>(s[i]));
    if (node < 0) break;
    if (values_[node] >= 0) best = {values_[node], i + 1};
  }
  return best;
}

}  // namespace tlm
