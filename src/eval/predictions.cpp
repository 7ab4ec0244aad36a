#include "tlm/predictions.h"

#include <nlohmann/json.hpp>

#include "tlm/check.h"
#include "tlm/evaluate.h"
#include "tlm/hash.h"
#include "tlm/safetensors.h"

namespace tlm {

std::vector<char> Predictions::correct(const std::string& name) const {
  const auto it = probs.find(name);
  TLM_CHECK(it != probs.end(), "no predictions of \"{}\"", name);
  const std::vector<int32_t> predicted = argmax_rows(it->second, static_cast<int>(label_names.size()));
  std::vector<char> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) out[i] = predicted[i] == labels[i];
  return out;
}

Predictions predictions_of(const SequenceSet& set, std::map<std::string, std::vector<float>> probs) {
  Predictions p;
  p.label_names = set.label_names;
  p.labels = set.labels;
  for (int64_t i = 0; i < set.size(); ++i) {
    const auto seq = set.sequence(i);
    p.items.push_back(static_cast<int64_t>(hash_bytes(seq.data(), seq.size() * sizeof(int32_t))));
  }
  for (const auto& [name, v] : probs) {
    TLM_CHECK(static_cast<int64_t>(v.size()) == set.size() * static_cast<int64_t>(set.label_names.size()),
              "predictions of {}: {} values for {} examples of {} labels", name, v.size(), set.size(),
              set.label_names.size());
  }
  p.probs = std::move(probs);
  return p;
}

void save_predictions(const std::string& path, const Predictions& p) {
  SafeTensorsFile f;
  f.metadata["format"] = "tlm-predictions";
  f.metadata["label_names"] = nlohmann::json(p.label_names).dump();
  const int64_t n = p.size(), k = static_cast<int64_t>(p.label_names.size());
  f.add_i32("labels", {n}, p.labels.data());
  f.add_i64("items", {n}, p.items.data());
  for (const auto& [name, v] : p.probs) f.add_f32("probs." + name, {n, k}, v.data());
  write_safetensors(path, f);
}

Predictions load_predictions(const std::string& path) {
  const SafeTensorsFile f = read_safetensors(path);
  const auto format = f.metadata.find("format");
  TLM_CHECK(format != f.metadata.end() && format->second == "tlm-predictions", "{}: not a tlm predictions file", path);
  Predictions p;
  try {
    p.label_names = nlohmann::json::parse(f.metadata.at("label_names")).get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: label names unreadable: {}", path, e.what()));
  }
  p.labels = f.at("labels", path).to_ints();
  p.items = f.at("items", path).to_int64s();
  TLM_CHECK(p.items.size() == p.labels.size(), "{}: {} items for {} labels", path, p.items.size(), p.labels.size());
  const int64_t k = static_cast<int64_t>(p.label_names.size());
  for (const auto& [name, t] : f.tensors) {
    if (name.rfind("probs.", 0) != 0) continue;
    TLM_CHECK(t.shape == std::vector<int64_t>({p.size(), k}), "{}: {} has the wrong shape", path, name);
    p.probs[name.substr(6)] = t.to_floats();
  }
  return p;
}

}  // namespace tlm
