#include "tlm/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tlm/check.h"

namespace tlm {

namespace fs = std::filesystem;

namespace {

// TLM_FAULT_INJECT=kill-before-checkpoint-rename[:STEP], read only by tests: whether to die
// between the last write of checkpoint `step` and its rename.
bool fault_injected_at(int64_t step) {
  const char* fault = std::getenv("TLM_FAULT_INJECT");
  if (!fault) return false;
  const std::string f = fault, name = "kill-before-checkpoint-rename";
  if (f == name) return true;
  return f.rfind(name + ":", 0) == 0 && f.substr(name.size() + 1) == std::to_string(step);
}

bool is_checkpoint_name(const std::string& name) {
  return name.size() == 14 && name.rfind("step-", 0) == 0 &&
         std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:09d}", step); }

bool is_complete_checkpoint(const std::string& dir) {
  const fs::path p(dir);
  return is_checkpoint_name(p.filename().string()) && fs::is_regular_file(p / "trainer_state.json");
}

std::vector<std::string> complete_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::vector<std::string> found;
  if (!fs::is_directory(root)) return found;
  for (const auto& e : fs::directory_iterator(root)) {
    if (is_complete_checkpoint(e.path().string())) found.push_back(e.path().string());
  }
  std::sort(found.begin(), found.end());  // fixed-width step numbers: name order is step order
  return found;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto all = complete_checkpoints(run_dir);
  return all.empty() ? std::string() : all.back();
}

int remove_partial_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return 0;
  std::vector<fs::path> partial;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!is_complete_checkpoint(e.path().string())) partial.push_back(e.path());
  }
  for (const auto& p : partial) fs::remove_all(p);
  return static_cast<int>(partial.size());
}

void write_checkpoint(const std::string& run_dir, int64_t step, int keep,
                      const std::function<void(const std::string& tmp)>& write) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = root / checkpoint_name(step);
  const fs::path tmp = root / fmt::format("{}.tmp-{}", checkpoint_name(step), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write(tmp.string());
  } catch (...) {  // e.g. a full disk: leave no partial folder behind
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  if (fault_injected_at(step)) std::raise(SIGKILL);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);  // the checkpoint appears complete or not at all
  const auto all = complete_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, keep)) < all.size(); ++i) fs::remove_all(all[i]);
}

}  // namespace tlm
