// tlm bench allreduce (under mpirun): how fast the ranks sum a gradient of a named config's size,
// with tlm's sum (a reduction to rank 0, then its broadcast: every rank the same bits) and with
// the MPI library's own allreduce, after checking both give the exact sum.
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "cli/commands.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/config.h"
#include "tlm/file_io.h"
#include "tlm/params.h"

namespace tlm::cli {

namespace {

struct AllreduceArgs {
  std::string configs = "tiny,bert1,bert6";
  int repeat = 5;
  std::string json_out;
};

struct Gradient {
  std::string name;
  int64_t values = 0, word_embeddings = 0;
};

// The gradient a pre-training step sums: every parameter of the config with its MLM head.
Gradient gradient_of(const std::string& name) {
  BertConfig cfg = BertConfig::named(name);
  cfg.head = Head::kMaskedLM;
  const ParamTable table(cfg);
  return {name, table.total_size(), table.at("bert.embeddings.word_embeddings.weight").size};
}

// Fills x with small integers, different on every rank, whose float sum is exact in any order.
void fill(std::vector<float>& x, int rank) {
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 7) + rank);
}

void check_exact(const std::vector<float>& x, const Comm& comm, const char* what) {
  const int n = comm.size();
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = static_cast<float>(static_cast<int>(i % 7) * n + n * (n - 1) / 2);
    TLM_CHECK(x[i] == want, "{}: value {} is {} on rank {}, expected {}", what, i, x[i], comm.rank(), want);
  }
}

// The median seconds of `repeat` timed sums (after one untimed), every rank starting together.
template <typename Sum>
double time_sum(std::vector<float>& x, const Comm& comm, int repeat, Sum&& sum) {
  std::vector<double> t;
  for (int r = 0; r <= repeat; ++r) {
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    sum(x.data(), static_cast<int64_t>(x.size()));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) t.push_back(dt);
  }
  std::sort(t.begin(), t.end());
  // Every rank's median, the slowest counted: a sum is over when its last rank has it.
  const int64_t nanoseconds = comm.max(static_cast<int64_t>(t[t.size() / 2] * 1e9));
  return static_cast<double>(nanoseconds) / 1e9;
}

void run_bench_allreduce(const AllreduceArgs& a) {
  const Comm& comm = Comm::world();
  TLM_CHECK(comm.distributed(), "tlm bench allreduce sums over MPI ranks: start it with mpirun -n N (N >= 2)");
  const int n = comm.size();
  std::vector<Gradient> grads;
  std::stringstream list(a.configs);
  for (std::string name; std::getline(list, name, ',');) grads.push_back(gradient_of(name));
  nlohmann::json rows = nlohmann::json::array();
  if (comm.leader()) {
    fmt::print("tlm bench allreduce: {} ({}), fp32 gradients, median of {} sums\n", comm.describe(), comm.node_name(),
               a.repeat);
    fmt::print("  {:<8} {:>10} {:>9} | {:>10} {:>9} {:>9} | {:>10} {:>9} {:>9}\n", "config", "values", "MB", "tlm ms",
               "algbw", "busbw", "MPI ms", "algbw", "busbw");
  }
  for (const Gradient& g : grads) {
    std::vector<float> x(static_cast<size_t>(g.values));
    fill(x, comm.rank());
    comm.sum(x.data(), g.values);
    check_exact(x, comm, "tlm's sum");
    fill(x, comm.rank());
    comm.sum_by_library(x.data(), g.values);
    check_exact(x, comm, "MPI_Allreduce");
    const double ours = time_sum(x, comm, a.repeat, [&](float* p, int64_t k) { comm.sum(p, k); });
    const double lib = time_sum(x, comm, a.repeat, [&](float* p, int64_t k) { comm.sum_by_library(p, k); });
    const double bytes = 4.0 * static_cast<double>(g.values);
    // Bus bandwidth as nccl-tests define it for an allreduce: what each link must carry.
    const double bus = 2.0 * (n - 1) / n;
    if (comm.leader()) {
      fmt::print("  {:<8} {:>10} {:>9.1f} | {:>10.2f} {:>9.2f} {:>9.2f} | {:>10.2f} {:>9.2f} {:>9.2f}\n", g.name,
                 g.values, bytes / 1e6, ours * 1e3, bytes / ours / 1e9, bus * bytes / ours / 1e9, lib * 1e3,
                 bytes / lib / 1e9, bus * bytes / lib / 1e9);
    }
    rows.push_back({{"config", g.name},
                    {"values", g.values},
                    {"word_embedding_values", g.word_embeddings},
                    {"bytes", bytes},
                    {"tlm_sum_ms", ours * 1e3},
                    {"mpi_allreduce_ms", lib * 1e3}});
  }
  if (comm.leader()) {
    fmt::print("  (GB/s; algbw = bytes / time; busbw = algbw x 2(N-1)/N, N = {})\n", n);
    if (!a.json_out.empty()) {
      const nlohmann::json j = {
          {"ranks", n}, {"mpi", comm.describe()}, {"node", comm.node_name()}, {"repeat", a.repeat}, {"sizes", rows}};
      write_file_atomic(a.json_out, j.dump(2) + "\n");
    }
  }
}

}  // namespace

void add_allreduce_bench_command(CLI::App& bench) {
  auto a = std::make_shared<AllreduceArgs>();
  auto* cmd = bench.add_subcommand("allreduce", "under mpirun: time summing gradients of named configs over ranks");
  cmd->add_option("--configs", a->configs, "named configs whose gradient sizes are summed (comma-separated)")
      ->capture_default_str();
  cmd->add_option("--repeat", a->repeat, "timed sums (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", a->json_out, "also write the result as JSON here (rank 0)");
  cmd->callback([a] { run_bench_allreduce(*a); });
}

}  // namespace tlm::cli
