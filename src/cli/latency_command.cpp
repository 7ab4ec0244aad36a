// tlm bench latency: inference latency of a classifier or a committee on real texts.
#include <omp.h>

#include "cli/commands.h"
#include "cli/members.h"
#include "cli/threads.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/latency.h"
#include "tlm/trainer.h"

namespace tlm::cli {

namespace {

struct LatencyArgs {
  std::vector<std::string> models;
  std::string data, format, classes, mode = "both", json_out;
  int max_len = 128, texts = 200, batch = 64, threads = 0;
};

void run_bench_latency(const LatencyArgs& a) {
  set_threads(a.threads);
  TLM_CHECK(a.mode == "sequential" || a.mode == "concurrent" || a.mode == "both",
            "--mode must be sequential, concurrent or both, got \"{}\"", a.mode);
  const Members m = load_members(a.models);
  const SequenceSet all = labeled_set_for(m, a.data, a.format, a.classes, a.max_len, 0, 0);
  SequenceSet set;  // the first --texts examples of the file
  set.label_names = all.label_names;
  for (int64_t i = 0; i < std::min<int64_t>(a.texts, all.size()); ++i) set.add(all.sequence(i), all.labels[i]);
  std::vector<std::unique_ptr<BertModel>> owned;
  std::vector<BertModel*> members;
  for (const auto& d : a.models) {
    owned.push_back(load_model_for(d, set, a.batch));
    members.push_back(owned.back().get());
  }
  nlohmann::json out = {{"models", a.models}, {"data", a.data}, {"max_len", a.max_len}};
  for (const char* mode : {"sequential", "concurrent"}) {
    if (a.mode != "both" && a.mode != mode) continue;
    if (std::string(mode) == "concurrent" && members.size() == 1) continue;  // the same as sequential
    LatencyOptions o;
    o.texts = a.texts;
    o.batch = a.batch;
    o.threads = omp_get_max_threads();
    o.mode = std::string(mode) == "concurrent" ? CommitteeMode::kConcurrent : CommitteeMode::kSequential;
    const nlohmann::json r = measure_latency(members, set, o);
    fmt::print(
        "tlm bench latency: {} model(s), {}, {} threads: single text p50 {:.3f} ms (p90 {:.3f}); "
        "batched {:.3f} ms/text; {:.2f} MFLOP per prediction\n",
        members.size(), mode, o.threads, r["single"]["p50_ms"].get<double>(), r["single"]["p90_ms"].get<double>(),
        r["batched"]["ms_per_text"].get<double>(), r["flops_per_prediction"].get<double>() / 1e6);
    out[mode] = r;
  }
  if (!a.json_out.empty()) write_file_atomic(a.json_out, out.dump(2) + "\n");
}

}  // namespace

void add_latency_command(CLI::App& bench) {
  auto a = std::make_shared<LatencyArgs>();
  auto* cmd = bench.add_subcommand("latency", "inference latency of a classifier or a soft committee");
  cmd->add_option("--model", a->models, "fine-tuned run folder (repeat for a committee)")->required();
  cmd->add_option("--data", a->data, "labeled data file (its first --texts examples are timed)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--format", a->format, "agnews, dbpedia, fewrel or csv")->required();
  cmd->add_option("--classes", a->classes, "class names (csv)");
  cmd->add_option("--texts", a->texts, "texts timed one at a time")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a->batch, "sequences per pass, batched")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-len", a->max_len, "tokens per sequence")->capture_default_str();
  cmd->add_option("--mode", a->mode, "committee members: sequential, concurrent or both")->capture_default_str();
  cmd->add_option("--threads", a->threads, "threads (0: all cores)");
  cmd->add_option("--json", a->json_out, "also write the result as JSON here");
  cmd->callback([a] { run_bench_latency(*a); });
}

}  // namespace tlm::cli
