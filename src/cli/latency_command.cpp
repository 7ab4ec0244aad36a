// tlm bench latency: inference latency of a classifier or a committee on real texts.
#include "cli/commands.h"
#include "cli/job_options.h"
#include "tlm/check.h"
#include "tlm/eval_jobs.h"

namespace tlm::cli {

void add_latency_command(CLI::App& bench, int argc, char** argv, int* exit_code) {
  add_job_command(
      bench, "latency", "latency", argc, argv, exit_code, [](const ResolvedConfig& c, const std::vector<std::string>&) {
        const nlohmann::json r = run_latency_job(c);
        if (r.contains("comparison")) {
          for (const auto& [pair, ratio] : r["comparison"]["ratios"].items()) {
            const auto& ci = ratio["ci95"];
            fmt::print(
                "tlm bench latency: {} single-text latency ratio {:.3f} (95% CI {})\n", pair,
                ratio["geometric_mean"].get<double>(),
                ci.is_null() ? "none" : fmt::format("[{:.3f}, {:.3f}]", ci[0].get<double>(), ci[1].get<double>()));
          }
          return 0;
        }
        for (const char* mode : {"sequential", "concurrent"}) {
          if (!r.contains(mode)) continue;
          const auto& m = r[mode];
          fmt::print(
              "tlm bench latency: {} model(s), {}, {} threads: single text p50 {:.3f} ms (p90 {:.3f}); "
              "batched {:.3f} ms/text; {:.2f} MFLOP per prediction\n",
              m["members"].get<int>(), mode, m["threads"].get<int>(), m["single"]["p50_ms"].get<double>(),
              m["single"]["p90_ms"].get<double>(), m["batched"]["ms_per_text"].get<double>(),
              m["flops_per_prediction"].get<double>() / 1e6);
        }
        return 0;
      });
}

}  // namespace tlm::cli
