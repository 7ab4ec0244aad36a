#include "tlm/vocab.h"

#include <fstream>

#include "tlm/check.h"

namespace tlm {

Vocab Vocab::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open vocabulary", path));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    // Hugging Face trims trailing whitespace of each line (handles \r\n files too).
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    tokens.push_back(line);
  }
  return from_tokens(std::move(tokens), path);
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, const std::string& source) {
  Vocab v;
  v.source_ = source;
  if (tokens.empty()) throw Error(source + ": the vocabulary is empty");
  v.tokens_ = std::move(tokens);
  uint64_t h = 1469598103934665603ull;
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& t = v.tokens_[id];
    v.all_[t] = id;  // a repeated token keeps its last id, as HF's loader does
    if (t.size() >= 2 && t[0] == '#' && t[1] == '#') {
      v.continuations_.insert(std::string_view(t).substr(2), id);
    } else {
      v.starts_.insert(t, id);
    }
    for (unsigned char ch : t) h = (h ^ ch) * 1099511628211ull;
    h = (h ^ 0x0A) * 1099511628211ull;
  }
  v.hash_ = h;
  auto special = [&](const char* name) {
    const int32_t id = v.find(name);
    if (id < 0) throw Error(fmt::format("{}: the vocabulary has no {} token", source, name));
    return id;
  };
  v.pad_ = special("[PAD]");
  v.unk_ = special("[UNK]");
  v.cls_ = special("[CLS]");
  v.sep_ = special("[SEP]");
  v.mask_ = special("[MASK]");
  return v;
}

int32_t Vocab::find(std::string_view token) const {
  auto it = all_.find(token);
  return it == all_.end() ? -1 : it->second;
}

}  // namespace tlm
