// Registration of the tlm subcommands on the CLI11 app. Commands whose options come from a job
// schema (job_options.h) get argc/argv for their manifests and set *exit_code (130 when a
// training run was stopped by a signal).
#pragma once

#include <CLI/CLI.hpp>

namespace tlm::cli {

void add_bench_command(CLI::App& app, int argc, char** argv, int* exit_code);
void add_latency_command(CLI::App& bench, int argc, char** argv, int* exit_code);  // bench latency
void add_allreduce_bench_command(CLI::App& bench);                                 // bench allreduce
void add_tokenize_command(CLI::App& app);
void add_vocab_command(CLI::App& app, int argc, char** argv, int* exit_code);
void add_data_command(CLI::App& app, int argc, char** argv, int* exit_code);
void add_eval_commands(CLI::App& app, int argc, char** argv, int* exit_code);   // eval, predict, overlap
void add_train_commands(CLI::App& app, int argc, char** argv, int* exit_code);  // pretrain, finetune
void add_reproduce_commands(CLI::App& app, int* exit_code);                     // reproduce, report
void add_serve_command(CLI::App& app, int* exit_code);                          // serve
void add_export_command(CLI::App& app);                                         // export

}  // namespace tlm::cli
