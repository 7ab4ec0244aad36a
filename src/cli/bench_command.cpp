#include <omp.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/threads.h"
#include "tlm/bench.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/device.h"
#include "tlm/file_io.h"
#include "tlm/readers.h"
#include "tlm/tokenizer.h"

namespace tlm::cli {

namespace {

struct BenchArgs {
  std::string config = "tiny";
  std::string task = "mlm";
  int batch = 32, seq = 128, steps = 5, warmup = 1, labels = 4, threads = 0;
  double mask_prob = 0.15;
  bool overlap_grads = false;
  double bucket_mb = 25;
  std::string json_out;
  std::string device = "cpu";
  std::string precision = "fp32";
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
  o.overlap_grads = a.overlap_grads;
  o.bucket_mb = a.bucket_mb;
  o.device = parse_device(a.device);
  std::string note;
  o.precision = resolve_precision(parse_precision(a.precision), o.device, &note);
  if (!note.empty() && Comm::world().leader()) fmt::print(stderr, "{}\n", note);  // once under mpirun
  const TrainBenchResult r = run_train_bench(o);
  if (!Comm::world().leader()) return;  // under mpirun, rank 0 reports
  fmt::print("tlm bench train: config {} ({} layers x {}, {} heads, vocab {}), task {}, batch {} x {}, {} threads{}\n",
             a.config, o.config.num_hidden_layers, o.config.hidden_size, o.config.num_attention_heads,
             o.config.vocab_size, a.task, a.batch, a.seq, r.threads,
             r.ranks > 1 ? fmt::format(" on each of {} ranks ({})", r.ranks, Comm::world().describe()) : "");
  fmt::print("  params {:.2f}M  loss {:.4f} -> {:.4f}\n", r.params / 1e6, r.first_loss, r.last_loss);
  fmt::print("  back end: {}\n", r.backend);
  fmt::print("  last layer: keys and values {}\n", r.last_layer_absorbed ? "absorbed into attention" : "projected");
  fmt::print(
      "  {:.1f} ms/step  {:.0f} tokens/s  {:.1f} GFLOP/s  MFU {:.1f}% of a measured {:.1f} GFLOP/s {} GEMM{} "
      "(before the steps {:.1f}, after {:.1f})\n",
      r.ms_per_step, r.tokens_per_s, r.gflops, 100 * r.mfu, r.ceiling_gflops, precision_name(o.precision),
      r.ranks > 1 ? " per rank" : "", r.ceiling_before_gflops, r.ceiling_after_gflops);
  if (r.ranks > 1) {
    fmt::print("  of which {:.1f} ms/step {} ({:.1f}%); {:.1f}% of the gradient's values summed\n", r.comm_ms_per_step,
               o.overlap_grads
                   ? fmt::format("waiting after backward for the gradient sum ({} MB buckets overlapped)", o.bucket_mb)
                   : std::string("summing gradients over the ranks"),
               100 * r.comm_ms_per_step / r.ms_per_step, 100 * r.values_summed / static_cast<double>(r.params));
  }
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"engine", "tlm"},
                        {"config", a.config},
                        {"task", a.task},
                        {"batch", a.batch},
                        {"seq_len", a.seq},
                        {"threads", r.threads},
                        {"ranks", r.ranks},
                        {"comm_ms_per_step", r.comm_ms_per_step},
                        {"gradient_values_summed_per_step", r.values_summed},
                        {"overlap_grads", o.overlap_grads},
                        {"bucket_mb", o.bucket_mb},
                        {"precision", precision_name(o.precision)},
                        {"backend", r.backend},
                        {"params", r.params},
                        {"ms_per_step", r.ms_per_step},
                        {"tokens_per_s", r.tokens_per_s},
                        {"gflops", r.gflops},
                        {"flops_per_step", r.flops_per_step},
                        {"last_layer_absorbed", r.last_layer_absorbed},
                        {"gemm_ceiling_gflops", r.ceiling_gflops},
                        {"gemm_ceiling_before_gflops", r.ceiling_before_gflops},
                        {"gemm_ceiling_after_gflops", r.ceiling_after_gflops},
                        {"mfu", r.mfu},
                        {"first_loss", r.first_loss},
                        {"last_loss", r.last_loss}};
    write_file_atomic(a.json_out, j.dump(2) + "\n");
  }
}

struct TokenizeBenchArgs {
  std::string input, format = "jsonl", text_field = "text", vocab;
  int repeat = 1;
};

void run_bench_tokenize(const TokenizeBenchArgs& a) {
  const Tokenizer tok(Vocab::load(a.vocab), {});
  ReaderOptions ro;
  ro.format = parse_format(a.format);
  ro.text_field = a.text_field;
  ro.on_bad_row = OnBadRow::kSkip;
  std::vector<std::string> docs;
  int64_t bytes = 0;
  const ReadStats rs = read_corpus(a.input, ro, [&](Example&& ex) {
    bytes += static_cast<int64_t>(ex.text.size());
    docs.push_back(std::move(ex.text));
  });
  // Validate, then time: the ids must be in the vocabulary and framed by [CLS] ... [SEP].
  std::vector<int32_t> ids;
  int64_t tokens = 0;
  double best = 1e30;
  for (int r = 0; r < a.repeat; ++r) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& d : docs) {
      ids.clear();
      tok.encode_pieces(d, ids);
      tokens += static_cast<int64_t>(ids.size());
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (int32_t id : ids) TLM_CHECK(id >= 0 && id < tok.vocab().size(), "id {} outside the vocabulary", id);
  fmt::print("tlm bench tokenize: {} documents ({} skipped), {:.1f} MB of text, {} word pieces, 1 thread\n",
             docs.size(), rs.skipped, bytes / 1e6, tokens);
  fmt::print("  {:.2f} s  {:.1f} MB/s  {:.2f} M tokens/s\n", best, bytes / 1e6 / best, tokens / 1e6 / best);
}

}  // namespace

void add_bench_command(CLI::App& app, int argc, char** argv, int* exit_code) {
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
  train->add_flag("--overlap-grads", args->overlap_grads,
                  "under mpirun: sum gradient buckets over the ranks while backward runs (a thread of its own)");
  train->add_option("--bucket-mb", args->bucket_mb, "with --overlap-grads: megabytes of gradients summed at a time")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e6));
  train->add_option("--device", args->device, "device: cpu, cuda or cuda:N")->capture_default_str();
  train->add_option("--precision", args->precision, "fp32, bf16 or auto")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  train->add_option("--threads", args->threads, "threads (0: all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--json", args->json_out, "also write the result as JSON here");
  train->callback([args] { run_bench_train(*args); });

  auto targs = std::make_shared<TokenizeBenchArgs>();
  auto* tokenize = bench->add_subcommand("tokenize", "time the BERT tokenizer on a corpus (one thread)");
  tokenize->add_option("--input", targs->input, "corpus file (plain or gzip)")->required()->check(CLI::ExistingFile);
  tokenize->add_option("--format", targs->format, "text, paragraphs, jsonl or wikiextractor")->capture_default_str();
  tokenize->add_option("--text-field", targs->text_field, "JSON Lines text field")->capture_default_str();
  tokenize->add_option("--vocab", targs->vocab, "vocab.txt")->required()->check(CLI::ExistingFile);
  tokenize->add_option("--repeat", targs->repeat, "timed passes (best is reported)")->capture_default_str();
  tokenize->callback([targs] { run_bench_tokenize(*targs); });
  add_latency_command(*bench, argc, argv, exit_code);
  add_allreduce_bench_command(*bench);
}

}  // namespace tlm::cli
