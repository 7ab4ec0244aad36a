// Typed job configurations. Every command the experiment runner launches (and `tlm predict`) has
// one schema: its keys with type, default, allowed range or values, help, and how a key enters a
// run's name. CLI flags, TOML files (--config), --set, --dump-config, experiment plans and the job
// files the runner writes all resolve and check values through it, so a value is checked once,
// the same way, wherever it comes from (NaN and infinities are never accepted).
//
// Keys are snake_case (max_len); the flag of a key is --max-len.
#pragma once

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tlm/device.h"

namespace tlm {

// kInts and kFloats are non-empty lists of numbers (a grid), each number checked against the range.
enum class FieldType { kInt, kFloat, kString, kStrings, kBool, kInts, kFloats };

// How a key enters the identity (the name) of a run: always; only when it differs from its
// default (keys added after runs were first named, so existing names stay); never (threads,
// output paths, logging and checkpoint cadence: they do not change results).
enum class Identity { kAlways, kWhenSet, kNever };

struct Field {
  std::string key;
  FieldType type = FieldType::kString;
  nlohmann::json default_value;  // null: no default
  std::string help;
  bool required = false;
  double min = -std::numeric_limits<double>::infinity(), max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;  // exclusive bounds
  std::vector<std::string> choices;         // allowed strings (empty: any)
  Identity identity = Identity::kAlways;
  nlohmann::json unnamed;  // kWhenSet: the value left out of a run's name (null: default_value)
  void (*check_string)(const std::string&) = nullptr;  // a string's own check: throws tlm::Error saying what is wrong
  // A string's one spelling (after check_string), so equal values configure and name runs alike.
  std::string (*canonical)(const std::string&) = nullptr;
};

class JobSchema {
 public:
  // relations: checks between keys of a complete configuration (throws naming the keys).
  JobSchema(std::string kind, std::vector<std::string> command, std::string summary, std::vector<Field> fields,
            std::function<void(const nlohmann::json&, const std::string& where)> relations = nullptr);

  const std::string& kind() const { return kind_; }
  // The tlm subcommand words (vocab train, bench latency, ...).
  const std::vector<std::string>& command() const { return command_; }
  const std::string& summary() const { return summary_; }
  const std::vector<Field>& fields() const { return fields_; }
  const Field* find(const std::string& key) const;
  const Field& at(const std::string& key, const std::string& where) const;  // unknown: error with a suggestion

  // A value checked against its field: type (a float field takes integers too), finite, range,
  // choices; a single string where a list of strings is expected becomes a one-element list.
  // Errors name `where` and the key.
  nlohmann::json check_value(const Field& f, const nlohmann::json& value, const std::string& where) const;
  // A value from text (a flag, --set): parsed by the field's type (a list of numbers separated by
  // commas), then checked.
  nlohmann::json parse_value(const Field& f, const std::string& text, const std::string& where) const;
  // A whole configuration: no unknown keys, every value checked, required keys present, relations.
  void check(const nlohmann::json& config, const std::string& where) const;
  nlohmann::json defaults() const;
  // The keys that identify the work of a configuration (see Identity).
  nlohmann::json identity(const nlohmann::json& config) const;

 private:
  std::string kind_, summary_;
  std::vector<std::string> command_;
  std::vector<Field> fields_;
  std::function<void(const nlohmann::json&, const std::string&)> relations_;
};

// pretrain, finetune, fasttext, eval, predict, latency, overlap, vocab, data.
const JobSchema& job_schema(const std::string& kind);
std::vector<std::string> job_kinds();

// The architecture keys (layers, hidden, heads, ffn, and the convolutional front-end's conv_layers,
// conv_kernel, conv_channels, pad_to) shared by pretrain and finetune.
const std::vector<std::string>& architecture_keys();

// Replaces a configuration's "precision" request (auto included) by what it resolves to on its
// "device", printing auto's one-line note to stderr, and returns it. Call before the identity is
// taken: the resolved precision is part of it.
Precision resolve_precision_key(nlohmann::json& config);

// How to get the fastText program the fasttext schema's `fasttext` key names.
inline constexpr const char* kFastTextInstall =
    "install Debian's fastText (apt-get install fasttext, or make deps) or give --fasttext";

// --max-len for max_len.
std::string flag_of(const std::string& key);

// The nearest of `known` to `key` by edit distance, or "" when none is close.
std::string nearest_name(const std::string& key, const std::vector<std::string>& known);

// A configuration resolved in layers: defaults, then a TOML file, then flags, then --set, each
// layer checked as it is applied. `given` holds the keys set by any layer (not defaults).
struct ResolvedConfig {
  nlohmann::json config;
  std::set<std::string> given;
  bool was_given(const std::string& key) const { return given.count(key) > 0; }
};

class ConfigResolver {
 public:
  explicit ConfigResolver(const JobSchema& schema);
  void apply_file(const std::string& toml_path);
  void apply_json(const nlohmann::json& values, const std::string& where);
  void apply_text(const std::string& key, const std::string& text, const std::string& where);
  void apply_set(const std::string& key_equals_value);  // --set key=value
  // Checks the whole configuration (required keys, relations) and returns it.
  ResolvedConfig result() const;
  // The configuration so far, each value checked but not the whole (for --dump-config).
  const ResolvedConfig& partial() const { return r_; }

 private:
  const JobSchema& schema_;
  ResolvedConfig r_;
};

// A configuration as TOML (the job files of the runner; `tlm <kind> --config FILE` reads them),
// after `comment`; with a schema, its other keys follow as comments with their defaults, so the
// file shows the whole resolved configuration while a key it sets still counts as given.
std::string config_to_toml(const nlohmann::json& config, const std::string& comment, const JobSchema* schema = nullptr);

}  // namespace tlm
