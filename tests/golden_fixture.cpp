#include "golden_fixture.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "model/conv_front.h"
#include "tlm/checkpoint.h"
#include "tlm/model_io.h"
#include "tlm/optim.h"

namespace tlm::testing {

// The compiled-in folders, unless the test binary runs elsewhere (scripts/gpu-check.sh carries it
// to a GPU machine): TLM_TEST_SOURCE_DIR and TLM_TEST_BINARY_DIR then say where they are.
std::string source_dir() {
  const char* moved = std::getenv("TLM_TEST_SOURCE_DIR");
  return moved && *moved ? moved : TLM_SOURCE_DIR;
}
std::string binary_dir() {
  const char* moved = std::getenv("TLM_TEST_BINARY_DIR");
  return moved && *moved ? moved : TLM_BINARY_DIR;
}

Golden load_golden(const std::string& path) {
  Golden g;
  g.path = path;
  g.file = read_safetensors(path);
  g.config = BertConfig::from_hf_json(nlohmann::json::parse(g.file.metadata.at("config")), path);
  g.trajectory = nlohmann::json::parse(g.file.metadata.at("trajectory"));
  const SafeTensor& ids_t = g.file.at("input.ids", path);
  const int rows = static_cast<int>(ids_t.shape[0]), cols = static_cast<int>(ids_t.shape[1]);
  g.padded_len = cols;
  const auto ids = ids_t.to_ints(), mask = g.file.at("input.mask", path).to_ints();
  const auto types = g.file.at("input.type_ids", path).to_ints();
  const auto labels = g.file.at("input.labels", path).to_ints();
  Batch& b = g.batch;
  b.offsets.push_back(0);
  for (int r = 0; r < rows; ++r) {
    for (int t = 0; t < cols; ++t) {
      if (!mask[r * cols + t]) continue;
      if (g.config.head == Head::kMaskedLM && labels[r * cols + t] != -100) {
        b.mlm_positions.push_back(b.num_tokens());
        b.mlm_labels.push_back(labels[r * cols + t]);
      }
      b.ids.push_back(ids[r * cols + t]);
      b.type_ids.push_back(types[r * cols + t]);
    }
    b.offsets.push_back(b.num_tokens());
  }
  if (g.config.head == Head::kClassification) b.labels = labels;
  return g;
}

std::unique_ptr<BertModel> golden_model(const Golden& g, std::shared_ptr<Backend> backend) {
  ModelLimits lim{g.batch.num_tokens(), g.batch.num_seqs(), g.padded_len,
                  std::max<int>(1, static_cast<int>(g.batch.mlm_positions.size()))};
  auto model = std::make_unique<BertModel>(g.config, lim, std::move(backend));
  SafeTensorsFile weights;
  for (const auto& [name, t] : g.file.tensors) {
    if (name.rfind("param.", 0) == 0) weights.tensors[name.substr(6)] = t;
  }
  load_weights(*model, weights, g.path, {LoadMode::kExact});
  return model;
}

std::string conv_weight_of_bias(const ConvConfig& conv, const std::string& name, const std::string& prefix) {
  for (int s = 0; conv.enabled() && s <= conv.layers; ++s) {
    const ConvStageNames n = conv_stage_names(conv, s);
    if (name == prefix + n.conv_bias) return prefix + n.conv_weight;
  }
  return "";
}

double rel_error(const float* a, const float* b, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(b[i])));
  }
  return max_diff / std::max(max_ref, 1e-30);
}

double rms_error(const float* a, const float* b, int64_t n) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / std::max(ref, 1e-300));
}

}  // namespace tlm::testing
