#include "train/run_files.h"

#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/comm.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"
#include "tlm/machine.h"
#include "tlm/model_io.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

void save_run_model(const std::string& dir, const BertModel& model, const json& run_config) {
  save_model(dir, model);
  json cfg = model.config().to_hf_json();
  cfg["tlm_run"] = run_config;
  write_file_atomic((fs::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
}

RunFiles::RunFiles(const TrainJob& job) : job_(job), dir_(job.out_dir), writes_(Comm::world().leader()) {}

void RunFiles::start_log() {
  if (writes_) write_file_atomic((fs::path(dir_) / "log.jsonl").string(), "");
}

void RunFiles::log(const json& record) {
  if (!writes_) return;
  std::ofstream out(fs::path(dir_) / "log.jsonl", std::ios::app);
  out << record.dump() << '\n';
  if (!out) throw Error(fmt::format("{}/log.jsonl: write failed", dir_));
}

void RunFiles::truncate_log_after(int64_t step) {
  if (!writes_) return;
  const std::string path = (fs::path(dir_) / "log.jsonl").string();
  std::string kept;
  if (fs::exists(path)) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception&) {
        continue;  // a line cut by the kill
      }
      if (j.value("step", int64_t{0}) <= step) kept += line + "\n";
    }
  }
  write_file_atomic(path, kept);
}

void RunFiles::save_checkpoint(const TrainLoop& loop, BertModel& model, const json& state) {
  if (!writes_) return;
  write_checkpoint(dir_, loop.step(), job_.options.keep_checkpoints, [&](const std::string& tmp) {
    save_run_model(tmp, model, job_.run_config);
    loop.save(tmp);
    write_file_atomic((fs::path(tmp) / "trainer_state.json").string(), state.dump(2) + "\n");  // last: completes it
  });
}

void RunFiles::save_final(const BertModel& model, const json& metrics) {
  if (!writes_) return;
  save_run_model(dir_, model, job_.run_config);
  write_file_atomic((fs::path(dir_) / "metrics.json").string(), metrics.dump(2) + "\n");
}

void RunFiles::write_manifest(const BertModel& model, const std::string& status) {
  if (!writes_) return;
  json m = build_facts();
  m["status"] = status;
  m["updated"] = now_utc();
  m["command_line"] = job_.command_line;
  m["run_config"] = job_.run_config;
  m["data"] = job_.data_hashes;
  m["parameters"] = model.num_params();
  m["backend"] = model.backend().describe();  // the device, precision and GEMM library it computed on
  m["precision"] = precision_name(model.backend().precision());  // what --precision (auto too) resolved to
  // whether the last layer's keys and values were absorbed into attention (kernels.h): the model
  // chooses by head, limits and back end, and it decides how bf16 rounds them
  m["last_layer"] = model.absorbs_last_layer() ? "keys and values absorbed" : "keys and values projected";
  const Comm& comm = Comm::world();  // data-parallel: how many processes trained it, on which MPI
  m["processes"] = comm.size();
  if (comm.distributed()) m["mpi"] = comm.describe();
  if (job_.vocab) m["vocab_hash"] = hex16(job_.vocab->hash());
  if (!job_.notes.is_null()) m["notes"] = job_.notes;
  write_file_atomic((fs::path(dir_) / "manifest.json").string(), m.dump(2) + "\n");
}

}  // namespace tlm
