#include "tlm/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <set>

#include "tlm/check.h"

namespace tlm {

namespace fs = std::filesystem;

namespace {

std::string join(const std::string& dir, const char* file) { return (fs::path(dir) / file).string(); }

// Tensors HF may write that we do not hold: tied copies, buffers, heads of other architectures.
bool ignorable(const std::string& name) {
  return name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias" ||
         name.find("position_ids") != std::string::npos || name.rfind("cls.seq_relationship.", 0) == 0;
}

bool is_encoder(const std::string& name) {
  return name.rfind("bert.embeddings.", 0) == 0 || name.rfind("bert.encoder.", 0) == 0;
}

}  // namespace

void save_model(const std::string& dir, const BertModel& model) {
  fs::create_directories(dir);
  SafeTensorsFile file;
  file.metadata["format"] = "pt";  // transformers refuses safetensors files without it
  file.metadata["producer"] = "tlm " TLM_VERSION;
  for (const auto& e : model.table().entries()) file.add_f32(e.name, e.shape, model.params() + e.offset);
  write_safetensors(join(dir, "model.safetensors"), file);
  model.config().save(join(dir, "config.json"));
}

void load_weights(BertModel& model, const SafeTensorsFile& file, const std::string& source, LoadMode mode) {
  std::set<std::string> used;
  for (const auto& e : model.table().entries()) {
    if (mode == LoadMode::kEncoderOnly && !is_encoder(e.name)) continue;
    auto it = file.tensors.find(e.name);
    if (it == file.tensors.end()) throw Error(fmt::format("{}: missing tensor \"{}\"", source, e.name));
    const SafeTensor& t = it->second;
    if (t.dtype != "F32") {
      throw Error(fmt::format("{}: tensor \"{}\" has dtype {}, expected F32", source, e.name, t.dtype));
    }
    if (t.shape != e.shape) {
      throw Error(fmt::format("{}: tensor \"{}\" has shape [{}], the model expects [{}]", source, e.name,
                              fmt::join(t.shape, ", "), fmt::join(e.shape, ", ")));
    }
    std::memcpy(model.params() + e.offset, t.bytes.data(), t.bytes.size());
    used.insert(e.name);
  }
  if (mode == LoadMode::kExact) {
    for (const auto& [name, t] : file.tensors) {
      if (!used.count(name) && !ignorable(name)) {
        throw Error(fmt::format("{}: unexpected tensor \"{}\" (not part of this model)", source, name));
      }
    }
  }
}

BertConfig load_config(const std::string& dir) { return BertConfig::load(join(dir, "config.json")); }

void load_model_weights(BertModel& model, const std::string& dir, LoadMode mode) {
  const std::string path = join(dir, "model.safetensors");
  load_weights(model, read_safetensors(path), path, mode);
}

void save_optimizer(const std::string& dir, const AdamW& opt, const ParamTable& table) {
  fs::create_directories(dir);
  SafeTensorsFile file;
  file.metadata["format"] = "tlm-adamw";
  file.metadata["version"] = std::to_string(kOptimizerStateVersion);
  file.metadata["step"] = std::to_string(opt.steps_taken());
  for (const auto& e : table.entries()) {
    file.add_f32("exp_avg." + e.name, e.shape, opt.exp_avg().data() + e.offset);
    file.add_f32("exp_avg_sq." + e.name, e.shape, opt.exp_avg_sq().data() + e.offset);
  }
  write_safetensors(join(dir, "optimizer.safetensors"), file);
}

void load_optimizer(const std::string& dir, AdamW& opt, const ParamTable& table) {
  const std::string path = join(dir, "optimizer.safetensors");
  const SafeTensorsFile file = read_safetensors(path);
  auto meta = [&](const char* key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw Error(fmt::format("{}: metadata lacks \"{}\"", path, key));
    return it->second;
  };
  if (meta("format") != "tlm-adamw") throw Error(path + ": not a tlm optimizer state (format " + meta("format") + ")");
  if (meta("version") != std::to_string(kOptimizerStateVersion)) {
    throw Error(fmt::format("{}: optimizer state version {} is not supported (this tlm reads version {})", path,
                            meta("version"), kOptimizerStateVersion));
  }
  for (const auto& e : table.entries()) {
    for (auto [prefix, buf] : {std::pair{"exp_avg.", &opt.exp_avg()}, std::pair{"exp_avg_sq.", &opt.exp_avg_sq()}}) {
      const SafeTensor& t = file.at(prefix + e.name, path);
      if (t.dtype != "F32" || t.shape != e.shape) {
        throw Error(fmt::format("{}: tensor \"{}{}\" has the wrong dtype or shape", path, prefix, e.name));
      }
      std::memcpy(buf->data() + e.offset, t.bytes.data(), t.bytes.size());
    }
  }
  opt.set_steps_taken(std::stoll(meta("step")));
}

}  // namespace tlm
