// libFuzzer target: the BERT tokenizer on arbitrary bytes. Invariants: no crash, no sanitizer
// report, [CLS] first and [SEP] last, every id inside the vocabulary.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tlm/tokenizer.h"

static const tlm::Tokenizer& tokenizer() {
  static const tlm::Tokenizer tok = [] {
    std::vector<std::string> t{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "a", "##b", "ab",
                               "##",    "é",     "##é",   "北",    "the",    "##s",       "x", "##x", "!"};
    return tlm::Tokenizer(tlm::Vocab::from_tokens(t, "fuzz"), {.max_len = 64, .added_tokens = {"[unused0]"}});
  }();
  return tok;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer().encode(text);
  if (ids.size() < 2 || ids.front() != 2 || ids.back() != 3 || ids.size() > 64) std::abort();
  for (int32_t id : ids) {
    if (id < 0 || id >= tokenizer().vocab().size()) std::abort();
  }
  (void)tokenizer().normalize(text);
  return 0;
}
