// The parameter table: every tensor of the model with its Hugging Face name and shape, laid
// out in one contiguous buffer (and the gradient, AdamW moments in buffers of the same layout).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tlm/config.h"

namespace tlm {

struct ParamInfo {
  std::string name;            // Hugging Face state-dict name, e.g. bert.encoder.layer.0.output.dense.weight
  std::vector<int64_t> shape;  // torch shape, row-major
  int64_t offset = 0;          // in floats, into the parameter buffer
  int64_t size = 0;            // number of floats
  enum class Init { kNormal, kZero, kOne, kUniform } init = Init::kNormal;
  float bound = 0;  // kUniform: U(-bound, bound), torch's default for a convolution (1 / sqrt(fan_in))
};

class ParamTable {
 public:
  // The tensors of `config`: encoder, plus the MLM head or the pooler + classifier.
  explicit ParamTable(const BertConfig& config);

  const std::vector<ParamInfo>& entries() const { return entries_; }
  int64_t total_size() const { return total_; }
  // Saved state that is not trained (BatchNorm's running statistics), in a buffer of its own
  // layout: in the checkpoint beside the parameters, never seen by the optimiser.
  const std::vector<ParamInfo>& buffers() const { return buffers_; }
  int64_t buffers_size() const { return buffers_total_; }
  const ParamInfo& buffer(const std::string& name) const;  // throws if absent
  // Names of the BatchNorms' num_batches_tracked counters (I64 scalars in the checkpoint).
  const std::vector<std::string>& batch_counters() const { return counters_; }
  const ParamInfo* find(const std::string& name) const;  // null if absent
  const ParamInfo& at(const std::string& name) const;    // throws if absent

 private:
  void add(const std::string& name, std::vector<int64_t> shape, ParamInfo::Init init, float bound = 0);
  void add_buffer(const std::string& name, int64_t size, ParamInfo::Init init);
  std::vector<ParamInfo> entries_, buffers_;
  std::vector<std::string> counters_;
  int64_t total_ = 0, buffers_total_ = 0;
};

// "bert.encoder.layer.N." of transformer layer l (0-based): with a convolutional front-end their
// model holds it at index 0, so transformer layer l is N = l + 1.
std::string encoder_layer_prefix(const BertConfig& config, int l);
// The convolutional front-end's module prefix in their model.
inline constexpr const char* kConvPrefix = "bert.encoder.layer.0.";

}  // namespace tlm
