#include "tlm/run_folder.h"

#include <filesystem>

#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"
#include "tlm/hf_tokenizer_json.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string path_in(const std::string& dir, const char* file) { return (fs::path(dir) / file).string(); }

}  // namespace

void save_run_tokenizer(const std::string& dir, const Vocab& vocab, const TokenizerOptions& o) {
  fs::create_directories(dir);
  std::string text;
  for (const auto& t : vocab.tokens()) text += t + "\n";
  write_file_atomic(path_in(dir, "vocab.txt"), text);
  json cfg = hf_tokenizer_config(o);
  cfg["tlm_max_chars_per_word"] = o.max_chars_per_word;
  write_file_atomic(path_in(dir, "tokenizer_config.json"), cfg.dump(2) + "\n");
}

TokenizerOptions load_tokenizer_options(const std::string& dir) {
  const std::string path = path_in(dir, "tokenizer_config.json");
  if (!fs::exists(path)) {
    throw Error(fmt::format("{}: missing (the run was made by an older tlm, or is not a run); run it again", path));
  }
  const json j = read_json_file(path);
  TokenizerOptions o;
  try {
    o.lowercase = j.at("do_lower_case").get<bool>();
    const json& sa = j.at("strip_accents");
    o.strip_accents = sa.is_null() ? -1 : sa.get<bool>() ? 1 : 0;
    o.max_len = j.at("model_max_length").get<int>();
    o.added_tokens = j.value("additional_special_tokens", std::vector<std::string>{});
    o.max_chars_per_word = j.value("tlm_max_chars_per_word", 100);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: {}", path, e.what()));
  }
  return o;
}

RunTokenizer load_run_tokenizer(const std::string& dir) {
  const std::string vp = path_in(dir, "vocab.txt");
  if (!fs::exists(vp)) throw Error(fmt::format("{}: no vocab.txt (not a tlm run folder?)", dir));
  Vocab vocab = Vocab::load(vp);
  const json m = read_manifest(dir);
  if (m.is_null() || !m.contains("vocab_hash")) {
    throw Error(fmt::format("{}: no manifest.json with a vocab_hash: the vocabulary cannot be checked", dir));
  }
  if (m["vocab_hash"].get<std::string>() != hex16(vocab.hash())) {
    throw Error(
        fmt::format("{}: vocab.txt (hash {}) is not the vocabulary the run was trained with (hash {} in "
                    "manifest.json): it was edited or replaced",
                    dir, hex16(vocab.hash()), m["vocab_hash"].get<std::string>()));
  }
  return {std::move(vocab), load_tokenizer_options(dir)};
}

bool same_case_handling(const TokenizerOptions& a, const TokenizerOptions& b) {
  auto strips = [](const TokenizerOptions& o) { return o.strip_accents < 0 ? o.lowercase : o.strip_accents == 1; };
  return a.lowercase == b.lowercase && strips(a) == strips(b);
}

std::string describe_case(const TokenizerOptions& o) { return o.lowercase ? "uncased" : "cased"; }

void check_tokenizer_flags(const std::string& dir, const TokenizerOptions& run, std::optional<bool> cased,
                           int max_len) {
  if (cased && *cased == run.lowercase) {
    throw Error(fmt::format("{} is {}, but --cased {} was given: a run is read with its own tokenizer settings", dir,
                            describe_case(run), *cased ? "true" : "false"));
  }
  if (max_len > 0 && max_len != run.max_len) {
    throw Error(
        fmt::format("{} was trained on sequences of {} tokens, but --max-len {} was given: leave it out to "
                    "use the run's",
                    dir, run.max_len, max_len));
  }
}

json read_manifest(const std::string& dir) {
  const std::string p = path_in(dir, "manifest.json");
  return fs::exists(p) ? read_json_file(p) : json(nullptr);
}

bool holds_run(const std::string& dir) {
  return fs::exists(path_in(dir, "manifest.json")) || fs::exists(path_in(dir, "model.safetensors")) ||
         !latest_checkpoint(dir).empty();
}

}  // namespace tlm
