#include "cli/members.h"

#include <algorithm>
#include <filesystem>

#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/readers.h"

namespace tlm::cli {

namespace fs = std::filesystem;

Members load_members(const std::vector<std::string>& dirs) {
  Members m;
  m.dirs = dirs;
  for (const auto& d : dirs) {
    const BertConfig cfg = load_config(d);
    if (cfg.head != Head::kClassification) throw Error(d + ": not a classifier (fine-tune it first)");
    const std::string vp = (fs::path(d) / "vocab.txt").string();
    if (!fs::exists(vp)) throw Error(d + ": no vocab.txt beside the model");
    Vocab v = Vocab::load(vp);
    if (!m.vocab) {
      m.labels = cfg.labels;
      m.vocab = std::make_unique<Vocab>(std::move(v));
      continue;
    }
    if (cfg.labels != m.labels) {
      throw Error(fmt::format("committee members {} and {} have different label sets", dirs[0], d));
    }
    if (v.hash() != m.vocab->hash()) {
      throw Error(fmt::format("committee members {} and {} have different vocabularies", dirs[0], d));
    }
  }
  return m;
}

SequenceSet labeled_set_for(const Members& m, const std::string& data, const std::string& format,
                            const std::string& classes, int max_len, int64_t per_label, uint64_t seed, bool cap) {
  ReaderOptions ro{.format = parse_format(format), .classes_path = classes};
  TokenizerOptions to;
  if (ro.format == Format::kFewRel) to.added_tokens = fewrel_markers();
  const Tokenizer tok(*m.vocab, to);
  LabeledData labeled = read_labeled(data, ro);
  std::vector<int32_t> to_model(labeled.label_names.size());
  for (size_t i = 0; i < labeled.label_names.size(); ++i) {
    const auto it = std::find(m.labels.begin(), m.labels.end(), labeled.label_names[i]);
    if (it == m.labels.end()) {
      throw Error(fmt::format("{}: label \"{}\" is not one of the model's labels", data, labeled.label_names[i]));
    }
    to_model[i] = static_cast<int32_t>(it - m.labels.begin());
  }
  for (auto& ex : labeled.examples) ex.label = to_model[ex.label];
  SequenceSet set = tokenize_examples(tok, labeled.examples, m.labels, max_len);
  if (per_label > 0) {
    const Sample s = sample_per_label(set.labels, m.labels, per_label, seed, cap);
    SequenceSet sub;
    sub.label_names = set.label_names;
    for (int64_t i : s.indices) sub.add(set.sequence(i), set.labels[i]);
    set = std::move(sub);
  }
  TLM_CHECK(set.size() > 0, "{}: no examples", data);
  return set;
}

}  // namespace tlm::cli
