// tlm: the one command-line program.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "tlm/check.h"

int main(int argc, char** argv) {
  CLI::App app{"tlm: tiny language models (BERT-style encoders, pre-training, fine-tuning, committees)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tlm " TLM_VERSION);
  int exit_code = 0;
  tlm::cli::add_bench_command(app, argc, argv, &exit_code);
  tlm::cli::add_tokenize_command(app);
  tlm::cli::add_vocab_command(app, argc, argv, &exit_code);
  tlm::cli::add_data_command(app, argc, argv, &exit_code);
  tlm::cli::add_eval_commands(app, argc, argv, &exit_code);
  tlm::cli::add_train_commands(app, argc, argv, &exit_code);
  tlm::cli::add_reproduce_commands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tlm::Error& e) {
    std::fprintf(stderr, "tlm: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tlm: error: out of memory (a smaller --batch, --max-len or model may fit)\n");
    return 1;
  } catch (const std::exception& e) {  // e.g. std::filesystem errors, which name their paths
    std::fprintf(stderr, "tlm: error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
