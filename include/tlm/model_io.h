// A model folder: Hugging Face's config.json and model.safetensors (HF tensor names, loadable by
// transformers as they are). Every write is atomic.
#pragma once

#include <string>

#include "tlm/model.h"
#include "tlm/safetensors.h"

namespace tlm {

void save_model(const std::string& dir, const BertModel& model);

enum class LoadMode {
  kExact,        // every tensor of the model must be in the file, nothing unknown
  kEncoderOnly,  // load bert.embeddings.* and bert.encoder.*; heads keep their fresh init
};

struct LoadOptions {
  LoadMode mode = LoadMode::kExact;
  // Weights with NaN or infinity are refused unless allowed (a diverged run is not a model).
  bool allow_nonfinite = false;
};

// Copies the file's tensors into `model`, checking names, shapes, dtypes (F32) and finiteness;
// the message names the tensor that is missing, misshaped, of another dtype or not finite.
void load_weights(BertModel& model, const SafeTensorsFile& file, const std::string& source, const LoadOptions& options);
BertConfig load_config(const std::string& dir);
void load_model_weights(BertModel& model, const std::string& dir, const LoadOptions& options);

}  // namespace tlm
