#include "tlm/model_io.h"

#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "kernels/kernels.h"
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

// The tensor of `e` from `file`, checked (present, dtype, shape, finite) and widened to float.
std::vector<float> read_checked(const SafeTensorsFile& file, const ParamInfo& e, const std::string& source,
                                const LoadOptions& o) {
  auto it = file.tensors.find(e.name);
  if (it == file.tensors.end()) throw Error(fmt::format("{}: missing tensor \"{}\"", source, e.name));
  const SafeTensor& t = it->second;
  if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16") {  // halves are widened exactly
    throw Error(fmt::format("{}: tensor \"{}\" has dtype {}, expected F32, BF16 or F16", source, e.name, t.dtype));
  }
  if (t.shape != e.shape) {
    throw Error(fmt::format("{}: tensor \"{}\" has shape [{}], the model expects [{}]", source, e.name,
                            fmt::join(t.shape, ", "), fmt::join(e.shape, ", ")));
  }
  std::vector<float> host = t.to_floats();
  if (!o.allow_nonfinite) {
    const int64_t i = kernels::first_nonfinite(host.data(), e.size);  // host data: the CPU kernel
    if (i >= 0) {
      throw Error(
          fmt::format("{}: tensor \"{}\" holds a non-finite value ({} at index {}): the run diverged; "
                      "--allow-nonfinite loads it anyway",
                      source, e.name, host[i], i));
    }
  }
  return host;
}

}  // namespace

void save_model(const std::string& dir, const BertModel& model) {
  fs::create_directories(dir);
  SafeTensorsFile file;
  file.metadata["format"] = "pt";  // transformers refuses safetensors files without it
  file.metadata["producer"] = "tlm " TLM_VERSION;
  const std::vector<float> params = model.params_to_host();
  for (const auto& e : model.table().entries()) file.add_f32(e.name, e.shape, params.data() + e.offset);
  const std::vector<float> buffers = model.buffers_to_host();
  for (const auto& e : model.table().buffers()) file.add_f32(e.name, e.shape, buffers.data() + e.offset);
  const int64_t tracked = model.batches_tracked();
  for (const auto& name : model.table().batch_counters()) file.add_i64(name, {}, &tracked);  // torch: a 0-d long
  write_safetensors(join(dir, "model.safetensors"), file);
  model.config().save(join(dir, "config.json"));
}

void load_weights(BertModel& model, const SafeTensorsFile& file, const std::string& source, const LoadOptions& o) {
  std::set<std::string> used;
  // Validate every tensor first, then copy: a refused file leaves the model as it was.
  std::vector<std::pair<const ParamInfo*, std::vector<float>>> params, buffers;
  auto wanted = [&](const ParamInfo& e) { return o.mode != LoadMode::kEncoderOnly || is_encoder(e.name); };
  for (const auto& e : model.table().entries()) {
    if (wanted(e)) params.emplace_back(&e, read_checked(file, e, source, o));
  }
  for (const auto& e : model.table().buffers()) {
    if (!wanted(e)) continue;
    buffers.emplace_back(&e, read_checked(file, e, source, o));
    if (e.name.ends_with("running_var")) {
      for (float v : buffers.back().second) {
        if (v < 0) throw Error(fmt::format("{}: tensor \"{}\" holds a negative variance ({})", source, e.name, v));
      }
    }
  }
  std::optional<int64_t> tracked;
  for (const auto& name : model.table().batch_counters()) {
    const SafeTensor& t = file.at(name, source);
    if (t.dtype != "I64" || t.numel() != 1) {
      throw Error(fmt::format("{}: tensor \"{}\" must be one I64 (a batch count), got {} of {} values", source, name,
                              t.dtype, t.numel()));
    }
    const int64_t count = t.to_int64s()[0];
    if (count < 0) throw Error(fmt::format("{}: tensor \"{}\" holds a negative batch count {}", source, name, count));
    if (tracked && *tracked != count) {
      throw Error(fmt::format("{}: the BatchNorms' num_batches_tracked differ ({} and {})", source, *tracked, count));
    }
    tracked = count;
    used.insert(name);
  }
  for (const auto& [e, host] : params) {
    model.set_params(host.data(), e->offset, e->size);
    used.insert(e->name);
  }
  for (const auto& [e, host] : buffers) {
    model.set_buffers(host.data(), e->offset, e->size);
    used.insert(e->name);
  }
  if (tracked) model.set_batches_tracked(*tracked);
  if (o.mode == LoadMode::kExact) {
    for (const auto& [name, t] : file.tensors) {
      if (!used.count(name) && !ignorable(name)) {
        throw Error(fmt::format("{}: unexpected tensor \"{}\" (not part of this model)", source, name));
      }
    }
  }
}

BertConfig load_config(const std::string& dir) { return BertConfig::load(join(dir, "config.json")); }

void load_model_weights(BertModel& model, const std::string& dir, const LoadOptions& options) {
  const std::string path = join(dir, "model.safetensors");
  load_weights(model, read_safetensors(path), path, options);
}

}  // namespace tlm
