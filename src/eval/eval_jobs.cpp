#include "tlm/eval_jobs.h"

#include <omp.h>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/committee.h"
#include "tlm/evaluate.h"
#include "tlm/file_io.h"
#include "tlm/inference.h"
#include "tlm/latency.h"
#include "tlm/overlap.h"
#include "tlm/predictions.h"
#include "tlm/run_data.h"

namespace tlm {

using nlohmann::json;

namespace {

InferenceFlags inference_flags(const ResolvedConfig& rc) {
  InferenceFlags f;
  json c = rc.config;
  f.max_len = c.at("max_len");
  f.allow_nonfinite = c.at("allow_nonfinite");
  f.device = parse_device(c.at("device").get<std::string>());
  f.precision = resolve_precision_key(c);
  return f;
}

void write_if_asked(const json& c, const char* key, const json& result) {
  const std::string path = c.at(key);
  if (!path.empty()) write_file_atomic(path, result.dump(2) + "\n");
}

}  // namespace

json run_eval_job(const ResolvedConfig& rc) {
  const json& c = rc.config;
  const auto models = c.at("model").get<std::vector<std::string>>();
  const InferenceFlags flags = inference_flags(rc);
  const Committee committee(models, flags);
  const std::string data = c.at("data");
  const SequenceSet set = committee.labeled_set(data, parse_format(c.at("format")), c.at("classes"), c.at("per_label"),
                                                c.at("seed"), c.at("cap_per_label"));
  const int labels = static_cast<int>(committee.labels().size());
  const auto probs = committee.member_probabilities(set, c.at("batch"));
  json out = {{"data", data},
              {"examples", set.size()},
              {"labels", committee.labels()},
              {"device", flags.device.name()},
              {"precision", precision_name(flags.precision)}};
  out["members"] = json::array();
  for (size_t i = 0; i < probs.size(); ++i) {
    const EvalMetrics e = evaluate_probs(probs[i], set.labels, labels);
    out["members"].push_back({{"model", models[i]}, {"accuracy", e.accuracy}, {"macro_f1", e.macro_f1}});
  }
  out["committee"] = evaluate_probs(soft_committee(probs), set.labels, labels).to_json(committee.labels());
  out["committee"]["members"] = probs.size();
  out["majority_vote"] = {{"accuracy", accuracy(majority_vote(probs, labels), set.labels)}};
  out["by_size"] = accuracy_by_size(probs, set.labels, labels, c.at("subsets"), c.at("seed"));
  if (const std::string path = c.at("predictions"); !path.empty()) {
    std::map<std::string, std::vector<float>> by_model = {{"committee", soft_committee(probs)}};
    for (size_t i = 0; i < probs.size(); ++i) by_model[fmt::format("member{}", i + 1)] = probs[i];
    save_predictions(path, predictions_of(set, std::move(by_model)));
  }
  write_if_asked(c, "out", out);
  return out;
}

std::vector<json> run_predict_job(const ResolvedConfig& rc,
                                  const std::function<std::vector<std::string>()>& read_texts) {
  const json& c = rc.config;
  const Committee committee(c.at("model").get<std::vector<std::string>>(), inference_flags(rc));
  const SequenceSet set = committee.text_set(read_texts());
  std::vector<json> lines;
  if (set.size() == 0) return lines;
  const auto& names = committee.labels();
  const int labels = static_cast<int>(names.size());
  const auto probs = soft_committee(committee.member_probabilities(set, c.at("batch")));
  const auto predicted = argmax_rows(probs, labels);
  for (int64_t i = 0; i < set.size(); ++i) {
    json j = {{"label", names[predicted[i]]}};
    if (c.at("probs").get<bool>()) {
      json p = json::object();
      for (int k = 0; k < labels; ++k) p[names[k]] = probs[i * labels + k];
      j["probs"] = p;
    }
    lines.push_back(std::move(j));
  }
  return lines;
}

json run_latency_job(const ResolvedConfig& rc) {
  const json& c = rc.config;
  const auto models = c.at("model").get<std::vector<std::string>>();
  const std::string reference = c.at("reference");
  std::vector<std::string> all = models;
  if (!reference.empty()) all.push_back(reference);  // one tokenizer and label set for every model timed
  const Committee committee(all, inference_flags(rc));
  const SequenceSet every =
      committee.labeled_set(c.at("data"), parse_format(c.at("format")), c.at("classes"), 0, 0, false);
  SequenceSet set;  // the first --texts examples of the file
  set.label_names = every.label_names;
  const int64_t texts = c.at("texts");
  for (int64_t i = 0; i < std::min(texts, every.size()); ++i) set.add(every.sequence(i), every.labels[i]);
  const int batch = c.at("batch");
  std::vector<std::unique_ptr<BertModel>> owned;
  for (size_t i = 0; i < all.size(); ++i) owned.push_back(committee.load_member(i, set, batch));
  std::vector<BertModel*> members;
  for (size_t i = 0; i < models.size(); ++i) members.push_back(owned[i].get());
  LatencyOptions o;
  o.texts = static_cast<int>(texts);
  o.batch = batch;
  o.threads = omp_get_max_threads();
  json out = {{"models", models},
              {"data", c.at("data")},
              {"max_len", committee.max_len()},
              {"backend", owned.front()->backend().describe()},
              {"precision", precision_name(owned.front()->backend().precision())}};
  if (!reference.empty()) {
    out["reference"] = reference;
    out["comparison"] = compare_latency(owned.back().get(), members, set, o, c.at("rounds"));
  } else {
    const std::string mode = c.at("mode");
    for (const char* m : {"sequential", "concurrent"}) {
      if (mode != "both" && mode != m) continue;
      if (std::string(m) == "concurrent" && members.size() == 1) continue;  // the same as sequential
      o.mode = std::string(m) == "concurrent" ? CommitteeMode::kConcurrent : CommitteeMode::kSequential;
      out[m] = measure_latency(members, set, o);
    }
  }
  write_if_asked(c, "json", out);
  return out;
}

json run_overlap_job(const ResolvedConfig& rc) {
  const json& c = rc.config;
  const Format format = parse_format(c.at("format"));
  std::unique_ptr<Tokenizer> tok;
  const std::string model = c.at("model");
  if (!model.empty()) {
    RunTokenizer rt = load_run_tokenizer(model);
    check_tokenizer_flags(model, rt.options,
                          rc.was_given("cased") ? std::optional<bool>(c.at("cased").get<bool>()) : std::nullopt, 0);
    TokenizerOptions o = rt.options;
    o.max_len = 0;  // overlap counts every piece of a text, not the first max_len
    tok = std::make_unique<Tokenizer>(std::move(rt.vocab), o);
  } else {
    TokenizerOptions o = run_tokenizer_options(c.at("cased"), 0, format);
    tok = std::make_unique<Tokenizer>(Vocab::load(c.at("vocab")), o);
  }
  ReaderOptions corpus_options{.format = parse_format(c.at("corpus_format")),
                               .text_field = c.at("text_field"),
                               .on_bad_row = parse_on_bad_row(c.at("on_bad_row"))};
  ReaderOptions data_options{.format = format, .classes_path = c.at("classes")};
  json out =
      measure_overlap(c.at("corpus").get<std::vector<std::string>>(), corpus_options, c.at("data"), data_options, *tok);
  out["tokenizer"] = model.empty() ? json{{"vocab", c.at("vocab")}, {"cased", c.at("cased")}}
                                   : json{{"model", model}, {"cased", !tok->options().lowercase}};
  write_if_asked(c, "out", out);
  return out;
}

}  // namespace tlm
