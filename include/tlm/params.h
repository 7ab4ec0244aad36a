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
  enum class Init { kNormal, kZero, kOne } init = Init::kNormal;
};

class ParamTable {
 public:
  // The tensors of `config`: encoder, plus the MLM head or the pooler + classifier.
  explicit ParamTable(const BertConfig& config);

  const std::vector<ParamInfo>& entries() const { return entries_; }
  int64_t total_size() const { return total_; }
  const ParamInfo* find(const std::string& name) const;  // null if absent
  const ParamInfo& at(const std::string& name) const;    // throws if absent

 private:
  void add(const std::string& name, std::vector<int64_t> shape, ParamInfo::Init init);
  std::vector<ParamInfo> entries_;
  int64_t total_ = 0;
};

}  // namespace tlm
