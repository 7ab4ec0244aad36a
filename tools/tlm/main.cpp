// tlm: the one command-line program.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "tlm/check.h"
#include "tlm/comm.h"

namespace {

// Started by mpirun/srun as one of several ranks: the trainers run data-parallel, reproduce
// spreads its runs over the ranks; nothing else runs as several ranks.
void check_distributed_command(const tlm::Comm& comm, int argc, char** argv) {
  if (!comm.distributed()) return;
  const std::string command = argc > 1 ? argv[1] : "";
  const std::string sub = argc > 2 ? argv[2] : "";
  if (command != "pretrain" && command != "finetune" && command != "reproduce" &&
      !(command == "bench" && (sub == "train" || sub == "allreduce"))) {
    throw tlm::Error("under mpirun only `tlm pretrain` and `tlm finetune` (data-parallel: " +
                     std::to_string(comm.size()) + " ranks train one model), `tlm reproduce` (its runs spread " +
                     "over the ranks) and `tlm bench train|allreduce` run; run `tlm " + command + "` as one process");
  }
}

// Prints the error; one rank's error ends every rank (a rank waiting in a collective would
// otherwise wait forever).
int fail(const char* what) {
  const tlm::Comm& comm = tlm::Comm::world();
  if (comm.distributed()) {
    std::fprintf(stderr, "tlm: error (rank %d of %d): %s\n", comm.rank(), comm.size(), what);
    comm.abort(1);
  }
  std::fprintf(stderr, "tlm: error: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tlm: tiny language models (BERT-style encoders, pre-training, fine-tuning, committees)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tlm " TLM_VERSION);
  int exit_code = 0;
  const tlm::Comm* comm = nullptr;  // null: MPI could not start (or this build has none)
  try {
    comm = &tlm::Comm::world();
    check_distributed_command(*comm, argc, argv);
  } catch (const tlm::Error& e) {
    std::fprintf(stderr, "tlm: error: %s\n", e.what());
    if (comm != nullptr) comm->abort(1);
    return 1;
  }
  tlm::cli::add_bench_command(app, argc, argv, &exit_code);
  tlm::cli::add_tokenize_command(app);
  tlm::cli::add_vocab_command(app, argc, argv, &exit_code);
  tlm::cli::add_data_command(app, argc, argv, &exit_code);
  tlm::cli::add_eval_commands(app, argc, argv, &exit_code);
  tlm::cli::add_train_commands(app, argc, argv, &exit_code);
  tlm::cli::add_reproduce_commands(app, &exit_code);
  tlm::cli::add_serve_command(app, &exit_code);
  tlm::cli::add_export_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code != 0 && tlm::Comm::world().distributed()) tlm::Comm::world().abort(code);
    tlm::Comm::finalize();
    return code;
  } catch (const tlm::Error& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory (a smaller --batch, --max-len or model may fit)");
  } catch (const std::exception& e) {  // e.g. std::filesystem errors, which name their paths
    return fail(e.what());
  }
  tlm::Comm::finalize();
  return exit_code;
}
