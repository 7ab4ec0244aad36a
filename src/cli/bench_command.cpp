#include <omp.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/threads.h"
#include "tlm/bench.h"
#include "tlm/check.h"
#include "tlm/file_io.h"

namespace tlm::cli {

namespace {

struct BenchArgs {
  std::string config = "tiny";
  std::string task = "mlm";
  int batch = 32, seq = 128, steps = 5, warmup = 1, labels = 4, threads = 0;
  double mask_prob = 0.15;
  std::string json_out;
};

void run_bench_train(const BenchArgs& a) {
  set_threads(a.threads);
  TrainBenchOptions o;
  o.config_name = a.config;
  o.config = std::filesystem::exists(a.config) ? BertConfig::load(a.config) : BertConfig::named(a.config);
  TLM_CHECK(a.task == "mlm" || a.task == "cls", "--task must be mlm or cls, got \"{}\"", a.task);
  o.mlm = a.task == "mlm";
  o.batch = a.batch;
  o.seq_len = a.seq;
  o.steps = a.steps;
  o.warmup_steps = a.warmup;
  o.num_labels = a.labels;
  o.mask_prob = a.mask_prob;
  const TrainBenchResult r = run_train_bench(o);
  fmt::print("tlm bench train: config {} ({} layers x {}, {} heads, vocab {}), task {}, batch {} x {}, {} threads\n",
             a.config, o.config.num_hidden_layers, o.config.hidden_size, o.config.num_attention_heads,
             o.config.vocab_size, a.task, a.batch, a.seq, r.threads);
  fmt::print("  params {:.2f}M  loss {:.4f} -> {:.4f}\n", r.params / 1e6, r.first_loss, r.last_loss);
  fmt::print("  {:.1f} ms/step  {:.0f} tokens/s  {:.1f} GFLOP/s  MFU {:.1f}% of a measured {:.1f} GFLOP/s fp32 GEMM\n",
             r.ms_per_step, r.tokens_per_s, r.gflops, 100 * r.mfu, r.ceiling_gflops);
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"engine", "tlm"},
                        {"config", a.config},
                        {"task", a.task},
                        {"batch", a.batch},
                        {"seq_len", a.seq},
                        {"threads", r.threads},
                        {"params", r.params},
                        {"ms_per_step", r.ms_per_step},
                        {"tokens_per_s", r.tokens_per_s},
                        {"gflops", r.gflops},
                        {"flops_per_step", r.flops_per_step},
                        {"gemm_ceiling_gflops", r.ceiling_gflops},
                        {"mfu", r.mfu},
                        {"first_loss", r.first_loss},
                        {"last_loss", r.last_loss}};
    write_file_atomic(a.json_out, j.dump(2) + "\n");
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  auto args = std::make_shared<BenchArgs>();
  auto* train = bench->add_subcommand("train", "time training steps on random tokens");
  train->add_option("--config", args->config, "named config (bert6, bert1, bert1-wide, mini, tiny) or a config.json")
      ->capture_default_str();
  train->add_option("--task", args->task, "mlm or cls")->capture_default_str();
  train->add_option("--batch", args->batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber);
  train->add_option("--seq", args->seq, "sequence length")->capture_default_str()->check(CLI::PositiveNumber);
  train->add_option("--steps", args->steps, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  train->add_option("--warmup", args->warmup, "untimed steps first")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--labels", args->labels, "classes (task cls)")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  train->add_option("--mask-prob", args->mask_prob, "masked share (task mlm)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  train->add_option("--threads", args->threads, "threads (0: all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--json", args->json_out, "also write the result as JSON here");
  train->callback([args] { run_bench_train(*args); });
}

}  // namespace tlm::cli
