#include "tlm/onnx_export.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>

#include "eval/bert_onnx.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/folder_replace.h"
#include "tlm/hf_tokenizer_json.h"
#include "tlm/inference.h"
#include "tlm/model_io.h"
#include "tlm/run_folder.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kModelFile = "onnx/model.onnx";
// What an export folder holds: a folder holding nothing else may be replaced by a new export.
constexpr const char* kExportEntries[] = {
    "onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"};

// A run's weights on the host, checked against its configuration.
OnnxMember load_member(const std::string& dir, BertConfig config, bool allow_nonfinite) {
  OnnxMember m{dir, std::move(config), {}, {}};
  // The smallest activation buffers: the model is only a holder for the checked weights.
  BertModel model(m.config, ModelLimits{.max_tokens = 1, .max_seqs = 1, .max_seq_len = 1, .max_targets = 1});
  load_model_weights(model, dir, {LoadMode::kExact, allow_nonfinite});
  m.params = model.params_to_host();
  m.buffers = model.buffers_to_host();
  return m;
}

struct Plan {
  std::vector<OnnxMember> members;
  std::vector<std::string> labels;  // classifiers
  std::optional<Vocab> vocab;       // set by plan_export
  TokenizerOptions tokenizer;
  bool masked_lm = false;
  int64_t parameters() const {
    int64_t n = 0;
    for (const auto& m : members) n += static_cast<int64_t>(m.params.size());
    return n;
  }
};

Plan plan_export(const OnnxExportOptions& o) {
  TLM_CHECK(!o.models.empty(), "no --model given");
  Plan plan;
  std::vector<BertConfig> configs;
  for (const auto& dir : o.models) {
    configs.push_back(load_config(dir));
    if (configs.back().head == Head::kMaskedLM) plan.masked_lm = true;
  }
  if (plan.masked_lm) {
    if (o.models.size() > 1) {
      throw Error("a committee is of fine-tuned classifiers: export a pre-trained (masked-LM) run on its own");
    }
    RunTokenizer rt = load_run_tokenizer(o.models[0]);
    plan.vocab = std::move(rt.vocab);
    plan.tokenizer = rt.options;
  } else {
    // the committee's own checks: shared labels, vocabulary and tokenizer settings
    const Committee committee(o.models, InferenceFlags{.allow_nonfinite = o.allow_nonfinite});
    plan.labels = committee.labels();
    plan.vocab = committee.tokenizer().vocab();
    plan.tokenizer = committee.tokenizer().options();
  }
  for (size_t i = 0; i < o.models.size(); ++i) {
    const std::string& dir = o.models[i];
    OnnxMember m = load_member(dir, std::move(configs[i]), o.allow_nonfinite);
    if (m.config.vocab_size != plan.vocab->size()) {
      throw Error(fmt::format("{}: config.json has vocab_size {} but vocab.txt holds {} tokens", dir,
                              m.config.vocab_size, plan.vocab->size()));
    }
    if (plan.tokenizer.max_len > m.config.max_position_embeddings) {
      throw Error(fmt::format("{}: sequence length {} exceeds max_position_embeddings {}", dir, plan.tokenizer.max_len,
                              m.config.max_position_embeddings));
    }
    plan.members.push_back(std::move(m));
  }
  return plan;
}

json config_json(const Plan& plan) {
  json cfg = read_json_file((fs::path(plan.members[0].dir) / "config.json").string());
  json members = json::array();
  for (const auto& m : plan.members) {
    members.push_back({{"run", fs::absolute(m.dir).lexically_normal().string()},
                       {"num_hidden_layers", m.config.num_hidden_layers},
                       {"hidden_size", m.config.hidden_size},
                       {"num_attention_heads", m.config.num_attention_heads},
                       {"parameters", static_cast<int64_t>(m.params.size())}});
  }
  const int max_len = plan.tokenizer.max_len;
  cfg["tlm_export"] = {{"format", "onnx"},
                       {"opset", kOnnxOpset},
                       {"file", kModelFile},
                       {"committee", plan.members.size() > 1},
                       {"logits", plan.members.size() > 1 ? "log of the mean of the members' softmax" : "the model's"},
                       {"sep_restored_at_position", max_len > 0 ? json(max_len - 1) : json(nullptr)},
                       {"parameters", plan.parameters()},
                       {"members", members}};
  return cfg;
}

json special_tokens_map(const TokenizerOptions& o) {
  return {{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"},   {"pad_token", "[PAD]"},
          {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}, {"additional_special_tokens", o.added_tokens}};
}

// --out as a folder path with a name ("e1/" and "." name their folder).
fs::path out_folder(const std::string& out) {
  TLM_CHECK(!out.empty(), "no --out given");
  fs::path p = fs::absolute(out).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p;
}

// Whether `inner` is `outer` or lies below it, links resolved.
bool within(const fs::path& inner, const fs::path& outer) {
  const fs::path i = fs::weakly_canonical(inner), o = fs::weakly_canonical(outer);
  return std::mismatch(o.begin(), o.end(), i.begin(), i.end()).first == o.end();
}

// `out` may be replaced when it is absent, an empty folder or an earlier export holding nothing
// else; never a run, a folder holding one, or a folder inside one.
void check_out(const fs::path& out, const std::vector<std::string>& models) {
  for (const auto& m : models) {
    if (within(m, out)) throw Error(fmt::format("--out {}: holds the run {}; choose another folder", out.string(), m));
    if (within(out, m))
      throw Error(fmt::format("--out {}: lies inside the run {}; choose a folder outside it", out.string(), m));
  }
  // any run, not only the ones exported: an export inside a run folder would mix with its files
  for (fs::path dir = fs::weakly_canonical(out).parent_path(); !dir.empty(); dir = dir.parent_path()) {
    if (holds_run(dir.string())) {
      throw Error(
          fmt::format("--out {}: lies inside the run {}; choose a folder outside it", out.string(), dir.string()));
    }
    if (dir == dir.root_path()) break;
  }
  if (fs::is_symlink(out)) {
    throw Error(fmt::format("--out {}: a symbolic link; give the folder it points to", out.string()));
  }
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out)) throw Error(fmt::format("--out {}: exists and is not a folder", out.string()));
  bool earlier_export = false;
  for (const auto& entry : fs::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (std::find(std::begin(kExportEntries), std::end(kExportEntries), name) == std::end(kExportEntries)) {
      throw Error(
          fmt::format("--out {}: holds {}, which an export does not write: only an empty folder or an "
                      "earlier export is replaced; choose another",
                      out.string(), name));
    }
    if (name == "config.json") {
      try {
        earlier_export = read_json_file(entry.path().string()).contains("tlm_export");
      } catch (const Error&) {
      }
    }
  }
  if (!fs::is_empty(out) && !earlier_export) {
    throw Error(fmt::format("--out {}: not an earlier tlm export (its config.json has no tlm_export); choose another",
                            out.string()));
  }
}

void write_folder(const fs::path& staging, const Plan& plan, const std::string& serialized) {
  fs::create_directories(staging / "onnx");
  write_file_atomic((staging / kModelFile).string(), serialized);
  write_file_atomic((staging / "config.json").string(), config_json(plan).dump(2) + "\n");
  write_file_atomic((staging / "tokenizer.json").string(),
                    hf_tokenizer_json(*plan.vocab, plan.tokenizer).dump() + "\n");
  write_file_atomic((staging / "tokenizer_config.json").string(), hf_tokenizer_config(plan.tokenizer).dump(2) + "\n");
  write_file_atomic((staging / "special_tokens_map.json").string(), special_tokens_map(plan.tokenizer).dump(2) + "\n");
  fs::copy_file(fs::path(plan.members[0].dir) / "vocab.txt", staging / "vocab.txt");
}

}  // namespace

OnnxExportSummary export_onnx(const OnnxExportOptions& o) {
  const fs::path out = out_folder(o.out);
  check_out(out, o.models);
  const Plan plan = plan_export(o);
  const OnnxGraphSpec spec{.masked_lm = plan.masked_lm,
                           .sep_id = plan.vocab->sep_id(),
                           .max_len = plan.tokenizer.max_len,
                           .vocab_size = plan.vocab->size(),
                           .num_labels = static_cast<int64_t>(plan.labels.size())};
  const onnx::ModelProto model = build_bert_onnx(plan.members, spec);
  check_onnx_model(model);
  const size_t bytes = model.ByteSizeLong();
  if (bytes > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error(fmt::format("the graph is {} bytes: protobuf files stop at 2 GiB (ONNX's external data is not written)",
                            bytes));
  }
  std::string serialized;
  TLM_CHECK(model.SerializeToString(&serialized), "could not serialise the ONNX model");

  OnnxExportSummary s;
  try {
    s.warnings = replace_folder(out, [&](const fs::path& staging) { write_folder(staging, plan, serialized); });
  } catch (const fs::filesystem_error& e) {
    throw Error(fmt::format("--out {}: {}", out.string(), e.what()));
  }
  s.architecture = plan.masked_lm ? "BertForMaskedLM" : "BertForSequenceClassification";
  s.members = static_cast<int>(plan.members.size());
  s.parameters = plan.parameters();
  s.model_bytes = static_cast<int64_t>(serialized.size());
  return s;
}

}  // namespace tlm
