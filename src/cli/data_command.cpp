#include "cli/commands.h"
#include "tlm/check.h"
#include "tlm/embedded.h"

namespace tlm::cli {

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "data sets");
  data->require_subcommand(1);
  auto out = std::make_shared<std::string>();
  auto opt = std::make_shared<EmbeddedOptions>();
  auto* emb = data->add_subcommand("embedded", "build the embedded default corpora and tasks from Debian packages");
  emb->add_option("--out", *out, "output folder")->required();
  emb->add_option("--seed", opt->seed, "seed of the train/test splits and shuffles")->capture_default_str();
  emb->add_option("--test-share", opt->test_share, "share of each label held out as test")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.9));
  emb->add_option("--min-per-label", opt->min_examples_per_label, "smaller fortune categories are left out")
      ->capture_default_str();
  emb->callback([out, opt] {
    const EmbeddedReport r = build_embedded_data(*out, *opt);
    fmt::print("tlm data embedded: {}\n", *out);
    for (const auto& [name, n] : r.corpus_documents) fmt::print("  corpus {:<16} {:>8} documents\n", name, n);
    for (const auto& [name, n] : r.task_labels) {
      fmt::print("  task   {:<18} {:>3} labels, {} train, {} test\n", name, n, r.task_train.at(name),
                 r.task_test.at(name));
    }
    for (const auto& d : r.dropped_labels) fmt::print("  left out (too few examples): {}\n", d);
    for (const auto& m : r.missing_sources) fmt::print("  missing source: {} (run scripts/install-deps.sh)\n", m);
    if (!r.missing_sources.empty()) throw Error("some embedded sources are not installed");
  });
}

}  // namespace tlm::cli
