// Registration of the tlm subcommands on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace tlm::cli {

void add_bench_command(CLI::App& app);
void add_latency_command(CLI::App& bench);  // bench latency
void add_tokenize_command(CLI::App& app);
void add_vocab_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_eval_commands(CLI::App& app);  // eval, predict, overlap
// pretrain, finetune; *exit_code receives the command's status (130 when stopped by a signal).
void add_train_commands(CLI::App& app, int argc, char** argv, int* exit_code);
// reproduce, report
void add_reproduce_commands(CLI::App& app, int* exit_code);

}  // namespace tlm::cli
