// Checkpoints: a folder with Hugging Face's config.json and model.safetensors (HF tensor names,
// loadable by transformers as they are), and optionally optimizer.safetensors (AdamW moments,
// versioned) beside them. Every write is atomic.
#pragma once

#include <string>

#include "tlm/model.h"
#include "tlm/optim.h"
#include "tlm/safetensors.h"

namespace tlm {

constexpr int kOptimizerStateVersion = 1;

void save_model(const std::string& dir, const BertModel& model);

enum class LoadMode {
  kExact,        // every tensor of the model must be in the file, nothing unknown
  kEncoderOnly,  // load bert.embeddings.* and bert.encoder.*; heads keep their fresh init
};

// Copies the file's tensors into `model`, checking names, shapes and dtypes; the message names
// the tensor that is missing, misshaped or of the wrong dtype.
void load_weights(BertModel& model, const SafeTensorsFile& file, const std::string& source, LoadMode mode);
BertConfig load_config(const std::string& dir);
void load_model_weights(BertModel& model, const std::string& dir, LoadMode mode);

void save_optimizer(const std::string& dir, const AdamW& opt, const ParamTable& table);
void load_optimizer(const std::string& dir, AdamW& opt, const ParamTable& table);

}  // namespace tlm
