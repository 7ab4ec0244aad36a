// Reading the golden fixtures written by ref/make_golden.py (see that script for what they hold).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlm/model.h"
#include "tlm/safetensors.h"

namespace tlm::testing {

struct Golden {
  std::string path;
  SafeTensorsFile file;
  BertConfig config;
  nlohmann::json trajectory;
  Batch batch;  // packed from the padded fixture batch
  int padded_len = 0;
};

// Loads a fixture and packs its padded batch (mask 1 = token) into a tlm Batch.
Golden load_golden(const std::string& path);

// A model sized for the fixture batch, with the fixture's initial weights, on `backend`.
std::unique_ptr<BertModel> golden_model(const Golden& g, std::shared_ptr<Backend> backend = default_backend());

// The weight of the convolution whose bias is `name` (prefix + conv_stage_names' conv_bias, for
// some stage of `conv`), or "" when `name` is no convolution's bias. A training BatchNorm follows
// every such bias, so its exact gradient is 0 and tests compare its noise with the weight's scale.
std::string conv_weight_of_bias(const ConvConfig& conv, const std::string& name, const std::string& prefix = "");

// Largest |a - b| over the largest |b|: a normwise relative error, robust to entries near 0.
double rel_error(const float* a, const float* b, int64_t n);
// ||a - b|| / ||b|| (2-norms): how far a is overall, where a few entries may differ a lot.
double rms_error(const float* a, const float* b, int64_t n);

std::string source_dir();
std::string binary_dir();

}  // namespace tlm::testing
