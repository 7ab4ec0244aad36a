#include "experiment/plan_check.h"

#include <functional>
#include <map>
#include <set>

#include "tlm/check.h"
#include "tlm/config.h"
#include "tlm/device.h"
#include "tlm/job_config.h"

namespace tlm::experiment {

using nlohmann::json;

namespace {

// What a value of a plan key must be.
enum class Kind { kString, kBool, kPositiveInt, kNames, kPositiveInts, kPositiveNumbers, kTable };

struct Key {
  Kind kind;
  bool required = false;
  std::string refers_to;  // names in this table of the plan ([tasks], [corpora], [architectures])
};

[[noreturn]] void fail(const std::string& source, const std::string& where, const std::string& what) {
  throw Error(fmt::format("{}: plan: [{}] {}", source, where, what));
}

std::vector<std::string> names_of(const std::map<std::string, Key>& keys) {
  std::vector<std::string> n;
  for (const auto& [k, v] : keys) n.push_back(k);
  return n;
}

std::string suggestion(const std::string& key, const std::vector<std::string>& known) {
  const std::string near = nearest_name(key, known);
  return near.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", near);
}

void check_value(const std::string& source, const std::string& where, const std::string& key, const json& v,
                 Kind kind) {
  auto bad = [&](const std::string& expected) {
    fail(source, where, fmt::format("{}: expected {}, got {}", key, expected, v.dump()));
  };
  switch (kind) {
    case Kind::kString:
      if (!v.is_string() || v.get<std::string>().empty()) bad("a non-empty string");
      break;
    case Kind::kBool:
      if (!v.is_boolean()) bad("true or false");
      break;
    case Kind::kPositiveInt:
      if (!v.is_number_integer() || v.get<int64_t>() < 1) bad("a positive integer");
      break;
    case Kind::kNames:
      if (v.is_string()) break;
      if (!v.is_array() || v.empty()) bad("a non-empty list of names");
      for (const auto& e : v) {
        if (!e.is_string()) bad("a non-empty list of names");
      }
      break;
    case Kind::kPositiveInts:
      if (!v.is_array() || v.empty()) bad("a non-empty list of positive integers");
      for (const auto& e : v) {
        if (!e.is_number_integer() || e.get<int64_t>() < 1) bad("a non-empty list of positive integers");
      }
      break;
    case Kind::kPositiveNumbers:
      if (!v.is_array() || v.empty()) bad("a non-empty list of positive numbers");
      for (const auto& e : v) {
        if (!e.is_number() || !(e.get<double>() > 0) || !std::isfinite(e.get<double>())) {
          bad("a non-empty list of positive numbers");
        }
      }
      break;
    case Kind::kTable:
      if (!v.is_object()) bad("a table");
      break;
  }
}

// Names a section refers to must exist in `table` of the plan.
void check_refs(const std::string& source, const std::string& where, const std::string& key, const json& names,
                const json& plan, const std::string& table) {
  std::vector<std::string> known;
  if (plan.contains(table)) {
    for (const auto& [n, v] : plan[table].items()) known.push_back(n);
  }
  for (const auto& n : names.is_string() ? json::array({names}) : names) {
    const std::string name = n.get<std::string>();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      fail(source, where, fmt::format("{}: \"{}\" is not in [{}]{}", key, name, table, suggestion(name, known)));
    }
  }
}

// A table with exactly these keys (extra keys are errors with a suggestion), names that refer to
// other tables of the plan checked against them.
void check_table(const std::string& source, const std::string& where, const json& t,
                 const std::map<std::string, Key>& keys, const json& plan) {
  if (!t.is_object()) fail(source, where, "is not a table");
  for (const auto& [k, v] : t.items()) {
    const auto it = keys.find(k);
    if (it == keys.end()) fail(source, where, fmt::format("unknown key \"{}\"{}", k, suggestion(k, names_of(keys))));
    check_value(source, where, k, v, it->second.kind);
    if (!it->second.refers_to.empty()) check_refs(source, where, k, v, plan, it->second.refers_to);
  }
  for (const auto& [k, key] : keys) {
    if (key.required && !t.contains(k)) fail(source, where, fmt::format("needs the key \"{}\"", k));
  }
}

// Keys of a job schema, checked by that schema (type and range), minus the ones the plan sets.
void check_job_keys(const std::string& source, const std::string& where, const json& t, const std::string& kind,
                    const std::string& section, const std::map<std::string, Key>& plan_keys, const json& plan) {
  if (!t.is_object()) fail(source, where, "is not a table");
  const JobSchema& schema = job_schema(kind);
  std::vector<std::string> known = names_of(plan_keys);
  for (const auto& f : schema.fields()) {
    if (!plan_sets_key(section, f.key)) known.push_back(f.key);
  }
  for (const auto& [k, v] : t.items()) {
    if (const auto it = plan_keys.find(k); it != plan_keys.end()) {
      check_value(source, where, k, v, it->second.kind);
      if (!it->second.refers_to.empty()) check_refs(source, where, k, v, plan, it->second.refers_to);
    } else if (plan_sets_key(section, k)) {
      fail(source, where, fmt::format("{} is set by the plan for each run; remove it", k));
    } else if (const Field* f = schema.find(k)) {
      schema.check_value(*f, v, fmt::format("{}: plan: [{}]", source, where));
    } else {
      fail(source, where, fmt::format("unknown key \"{}\"{}", k, suggestion(k, known)));
    }
  }
  for (const auto& [k, key] : plan_keys) {
    if (key.required && !t.contains(k)) fail(source, where, fmt::format("needs the key \"{}\"", k));
  }
}

void check_named_tables(const std::string& source, const std::string& section, const json& t,
                        const std::function<void(const std::string& where, const json&)>& each) {
  if (!t.is_object() || t.empty()) fail(source, section, "needs at least one entry");
  for (const auto& [name, v] : t.items()) each(section + "." + name, v);
}

}  // namespace

bool plan_sets_key(const std::string& section, const std::string& key) {
  static const std::set<std::string> always = {"out", "resume", "auto_resume", "cache_dir", "threads", "seed", "vocab"};
  static const std::set<std::string> pretrain = {"corpus", "format", "text_field"};
  static const std::set<std::string> finetune = {"train", "test",    "format",      "classes",
                                                 "init",  "scratch", "sample_seed", "lr"};
  // fastText draws its samples as the tiny models do: the task's data and [finetune]'s draw.
  static const std::set<std::string> fasttext = {
      "train",          "test",          "format",          "classes",   "text_field",  "on_bad_row", "per_label_train",
      "per_label_test", "cap_per_label", "valid_per_label", "test_seed", "sample_seed", "max_len",    "cased"};
  if (always.count(key)) return true;
  if (section == "fasttext") return fasttext.count(key) > 0;
  return section == "pretrain" ? pretrain.count(key) > 0 : finetune.count(key) > 0;
}

void check_plan(const json& plan, const std::string& source) {
  const std::map<std::string, Key> top = {{"name", {Kind::kString}},
                                          {"description", {Kind::kString}},
                                          {"seeds", {Kind::kPositiveInt, true}},
                                          {"first_seed", {Kind::kPositiveInt}},
                                          {"pretrain_per_seed", {Kind::kBool}},
                                          {"device", {Kind::kString}},
                                          {"precision", {Kind::kString}},
                                          {"scale", {Kind::kTable}},
                                          {"data", {Kind::kTable}},
                                          {"vocab", {Kind::kTable, true}},
                                          {"corpora", {Kind::kTable, true}},
                                          {"tasks", {Kind::kTable, true}},
                                          {"architectures", {Kind::kTable, true}},
                                          {"pretrain", {Kind::kTable, true}},
                                          {"finetune", {Kind::kTable, true}},
                                          {"fasttext", {Kind::kTable}},
                                          {"e1", {Kind::kTable}},
                                          {"e2", {Kind::kTable}},
                                          {"e3", {Kind::kTable}},
                                          {"e4", {Kind::kTable}}};
  if (!plan.is_object()) fail(source, "top level", "is not a table");
  for (const auto& [k, v] : plan.items()) {
    const auto it = top.find(k);
    if (it == top.end()) {
      fail(source, "top level", fmt::format("unknown table or key \"{}\"{}", k, suggestion(k, names_of(top))));
    }
    if ((k == "e1" || k == "e2") && v.is_array()) continue;  // [[e1]], [[e2]]: checked below
    if (k == "scale") {                                      // written by --scale
      if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 1)) {
        fail(source, "top level", fmt::format("scale: expected a number in (0, 1], got {}", v.dump()));
      }
      continue;
    }
    check_value(source, "top level", k, v, it->second.kind);
    try {
      if (k == "device") parse_device(v.get<std::string>());
      if (k == "precision") parse_precision(v.get<std::string>());
    } catch (const Error& e) {
      fail(source, "top level", e.what());
    }
  }
  for (const auto& [k, key] : top) {
    if (key.required && !plan.contains(k)) fail(source, "top level", fmt::format("needs the key \"{}\"", k));
  }
  if (plan.contains("data")) {
    check_table(source, "data", plan["data"], {{"source", {Kind::kString}}, {"dir", {Kind::kString}}}, plan);
    const std::string src = plan["data"].value("source", "dir");
    if (src != "embedded" && src != "dir")
      fail(source, "data", fmt::format("source: \"{}\" is not embedded or dir", src));
  }
  check_table(source, "vocab", plan["vocab"],
              {{"file", {Kind::kString}},
               {"size", {Kind::kPositiveInt}},
               {"corpora", {Kind::kNames, false, "corpora"}},
               {"task_texts", {Kind::kBool}}},
              plan);
  if (!plan["vocab"].contains("file")) {
    if (!plan["vocab"].contains("size")) fail(source, "vocab", "needs a file, or a size to train one");
    if (!plan["vocab"].contains("corpora") && !plan["vocab"].value("task_texts", false)) {
      fail(source, "vocab", "needs the key \"corpora\" (or task_texts = true) to train a vocabulary");
    }
    const JobSchema& vs = job_schema("vocab");
    vs.check_value(vs.at("size", source), plan["vocab"]["size"], fmt::format("{}: plan: [vocab]", source));
  }
  check_named_tables(source, "corpora", plan["corpora"], [&](const std::string& where, const json& c) {
    check_table(source, where, c,
                {{"file", {Kind::kString, true}}, {"format", {Kind::kString}}, {"text_field", {Kind::kString}}}, plan);
    if (c.contains("format")) {
      const JobSchema& ps = job_schema("pretrain");
      ps.check_value(*ps.find("format"), c["format"], fmt::format("{}: plan: [{}]", source, where));
    }
  });
  check_named_tables(source, "tasks", plan["tasks"], [&](const std::string& where, const json& t) {
    check_table(source, where, t,
                {{"train", {Kind::kString, true}},
                 {"test", {Kind::kString}},
                 {"classes", {Kind::kString}},
                 {"format", {Kind::kString, true}},
                 {"finetune", {Kind::kTable}}},
                plan);
    const JobSchema& fs = job_schema("finetune");
    fs.check_value(*fs.find("format"), t["format"], fmt::format("{}: plan: [{}]", source, where));
    if (t.contains("finetune")) {
      check_job_keys(source, where + ".finetune", t["finetune"], "finetune", "finetune", {}, plan);
    }
  });
  check_named_tables(source, "architectures", plan["architectures"], [&](const std::string& where, const json& a) {
    const JobSchema& ps = job_schema("pretrain");
    if (!a.is_object()) fail(source, where, "is not a table");
    std::vector<std::string> known = architecture_keys();
    known.push_back("dropout");
    for (const auto& [k, v] : a.items()) {
      if (std::find(known.begin(), known.end(), k) == known.end()) {
        fail(source, where,
             fmt::format("unknown key \"{}\"{} (architectures hold {})", k, suggestion(k, known),
                         fmt::join(known, ", ")));
      }
      ps.check_value(*ps.find(k), v, fmt::format("{}: plan: [{}]", source, where));
    }
    // The front-end's kernel must fit the width now, not when the first run builds the model.
    const int hidden = a.value("hidden", ps.find("hidden")->default_value.get<int>());
    const auto [kernel_seq, kernel_hidden] =
        parse_conv_kernel(a.value("conv_kernel", ps.find("conv_kernel")->default_value.get<std::string>()));
    if (a.value("conv_layers", 0) > 0 && kernel_hidden > hidden) {
      fail(source, where, fmt::format("conv_kernel {},{} is wider than hidden {}", kernel_seq, kernel_hidden, hidden));
    }
  });
  check_job_keys(source, "pretrain", plan["pretrain"], "pretrain", "pretrain",
                 {{"corpus", {Kind::kString, true, "corpora"}}, {"sequences", {Kind::kPositiveInt, true}}}, plan);
  if (plan["pretrain"].value("cased", false) != plan["finetune"].value("cased", false)) {
    fail(source, "finetune",
         "cased must be the same as in [pretrain]: the scratch arm would read the text otherwise than the "
         "pre-trained one");
  }
  check_job_keys(source, "finetune", plan["finetune"], "finetune", "finetune",
                 {{"lrs", {Kind::kPositiveNumbers, true}}, {"test_seed", {Kind::kPositiveInt, true}}}, plan);
  if (plan.contains("fasttext")) check_job_keys(source, "fasttext", plan["fasttext"], "fasttext", "fasttext", {}, plan);
  const Key task{Kind::kString, true, "tasks"}, arch{Kind::kString, true, "architectures"};
  if (plan.contains("e1")) {
    const json parts = plan["e1"].is_array() ? plan["e1"] : json::array({plan["e1"]});
    if (parts.empty()) fail(source, "e1", "is empty");
    for (const auto& part : parts) {
      check_table(source, "e1", part,
                  {{"tasks", {Kind::kNames, true, "tasks"}}, {"architectures", {Kind::kNames, true, "architectures"}}},
                  plan);
    }
  }
  if (plan.contains("e2")) {
    const json parts = plan["e2"].is_array() ? plan["e2"] : json::array({plan["e2"]});
    if (parts.empty()) fail(source, "e2", "is empty");
    for (const auto& part : parts) {
      check_table(source, "e2", part,
                  {{"task", task},
                   {"architecture", arch},
                   {"sequences", {Kind::kPositiveInts, true}},
                   {"epochs", {Kind::kPositiveInts}}},
                  plan);
      if (part.contains("epochs") && part["epochs"].size() != part["sequences"].size()) {
        fail(source, "e2",
             fmt::format("epochs: {} values for {} sequences (one pre-training epoch count per size)",
                         part["epochs"].size(), part["sequences"].size()));
      }
    }
  }
  if (plan.contains("e3")) {
    check_table(source, "e3", plan["e3"],
                {{"task", task},
                 {"architecture", arch},
                 {"corpora", {Kind::kNames, true, "corpora"}},
                 {"sequences", {Kind::kPositiveInt, true}}},
                plan);
  }
  if (plan.contains("e4")) {
    const json& e = plan["e4"];
    check_table(source, "e4", e,
                {{"task", task},
                 {"member", arch},
                 {"deep", arch},
                 {"members", {Kind::kPositiveInt, true}},
                 {"latency_texts", {Kind::kPositiveInt}},
                 {"latency_batch", {Kind::kPositiveInt}},
                 {"latency_rounds", {Kind::kPositiveInt}}},
                plan);
    if (e["members"].get<int64_t>() < 2) fail(source, "e4", "members must be at least 2");
    if (!plan["tasks"][e["task"].get<std::string>()].contains("test")) {
      fail(source, "e4", fmt::format("task {} needs a test file", e["task"].get<std::string>()));
    }
  }
  if (!plan.contains("e1") && !plan.contains("e2") && !plan.contains("e3") && !plan.contains("e4")) {
    fail(source, "top level", "has no experiment (e1, e2, e3 or e4)");
  }
}

}  // namespace tlm::experiment
