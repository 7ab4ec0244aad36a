// tlm data embedded: the embedded default corpora and tasks from Debian packages.
#include "cli/commands.h"
#include "cli/job_options.h"
#include "tlm/check.h"
#include "tlm/embedded.h"

namespace tlm::cli {

void add_data_command(CLI::App& app, int argc, char** argv, int* exit_code) {
  auto* data = app.add_subcommand("data", "data sets");
  data->require_subcommand(1);
  add_job_command(*data, "embedded", "data", argc, argv, exit_code,
                  [](const ResolvedConfig& rc, const std::vector<std::string>&) {
                    const nlohmann::json& c = rc.config;
                    EmbeddedOptions opt;
                    opt.seed = c.at("seed");
                    opt.test_share = c.at("test_share");
                    opt.min_examples_per_label = c.at("min_per_label");
                    const std::string out = c.at("out");
                    const EmbeddedReport r = build_embedded_data(out, opt);
                    fmt::print("tlm data embedded: {}\n", out);
                    for (const auto& [name, n] : r.corpus_documents) {
                      fmt::print("  corpus {:<16} {:>8} documents\n", name, n);
                    }
                    for (const auto& [name, n] : r.task_labels) {
                      fmt::print("  task   {:<18} {:>3} labels, {} train, {} test\n", name, n, r.task_train.at(name),
                                 r.task_test.at(name));
                    }
                    for (const auto& d : r.dropped_labels) fmt::print("  left out (too few examples): {}\n", d);
                    for (const auto& m : r.missing_sources) {
                      fmt::print("  missing source: {} (run scripts/install-deps.sh)\n", m);
                    }
                    if (!r.missing_sources.empty()) throw Error("some embedded sources are not installed");
                    return 0;
                  });
}

}  // namespace tlm::cli
