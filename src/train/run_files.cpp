#include "train/run_files.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/machine.h"

#ifndef TLM_GIT_COMMIT
#define TLM_GIT_COMMIT "unknown"
#endif

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

json build_facts() {
  return {{"tlm_version", TLM_VERSION},
          {"commit", TLM_GIT_COMMIT},
          {"compiler", __VERSION__},
          {"cpu", cpu_model()},
          {"threads", omp_get_max_threads()}};
}

void save_run_model(const std::string& dir, const BertModel& model, const json& run_config) {
  save_model(dir, model);
  json cfg = model.config().to_hf_json();
  cfg["tlm_run"] = run_config;
  write_file_atomic((fs::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
}

void RunFiles::start_log() { write_file_atomic((fs::path(dir_) / "log.jsonl").string(), ""); }

void RunFiles::log(const json& record) {
  std::ofstream out(fs::path(dir_) / "log.jsonl", std::ios::app);
  out << record.dump() << '\n';
  if (!out) throw Error(fmt::format("{}/log.jsonl: write failed", dir_));
}

void RunFiles::truncate_log_after(int64_t step) {
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

void RunFiles::save_checkpoint(const std::string& name, const BertModel& model, const AdamW& opt, const json& state,
                               const json& run_config, int keep) {
  const fs::path root = fs::path(dir_) / "checkpoints";
  const fs::path final_dir = root / name;
  const fs::path tmp = root / fmt::format("{}.tmp-{}", name, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_run_model(tmp.string(), model, run_config);
  save_optimizer(tmp.string(), opt, model.table());
  write_file_atomic((tmp / "trainer_state.json").string(), state.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);  // the checkpoint appears complete or not at all
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) == 0 && n.find('.') == std::string::npos) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, keep)) < names.size(); ++i) fs::remove_all(root / names[i]);
}

void RunFiles::save_final(const BertModel& model, const json& run_config, const json& metrics) {
  save_run_model(dir_, model, run_config);
  write_file_atomic((fs::path(dir_) / "metrics.json").string(), metrics.dump(2) + "\n");
}

void RunFiles::write_manifest(const TrainJob& job, const BertModel& model, const std::string& status) {
  json m = build_facts();
  m["status"] = status;
  m["updated"] = now_utc();
  m["command_line"] = job.command_line;
  m["data"] = job.data_hashes;
  m["parameters"] = model.num_params();
  if (job.vocab) m["vocab_hash"] = fmt::format("{:016x}", job.vocab->hash());
  write_file_atomic((fs::path(dir_) / "manifest.json").string(), m.dump(2) + "\n");
}

}  // namespace tlm
