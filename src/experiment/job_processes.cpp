#include "experiment/job_processes.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>

#include "experiment/runner.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/device.h"
#include "tlm/file_io.h"
#include "tlm/job_config.h"

extern char** environ;

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Now, in seconds since the epoch, as the records write times.
double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A launcher's variables would make each run believe it is one of the launcher's ranks (and
// start MPI): the runs are single processes, so they do not inherit them.
bool launcher_variable(const std::string& entry) {
  for (const char* prefix : {"OMPI_", "PMIX_", "PMI_"}) {
    if (entry.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

void save_run_record(const std::string& out, const Job& job, json r) {
  r["id"] = job.id;
  r["kind"] = job.kind;
  r["title"] = job.title;
  write_file_atomic((fs::path(out) / job.dir / "runner.json").string(), r.dump(2) + "\n");
}

}  // namespace

json read_run_record_json(const std::string& out, const Job& job) {
  const fs::path p = fs::path(out) / job.dir / "runner.json";
  if (!fs::exists(p)) return json::object();
  return read_json_file(p.string());  // written atomically: a damaged one is foreign, and said so
}

std::string spread_device(const std::string& requested, std::vector<int>& load) {
  if (requested != "cuda" || load.size() < 2) return requested;
  const auto least = std::min_element(load.begin(), load.end());
  ++*least;
  return fmt::format("cuda:{}", least - load.begin());
}

JobProcesses::JobProcesses(const JobGraph& graph, const RunnerOptions& options, std::string node)
    : g_(graph), o_(options), node_(std::move(node)) {
  for (char** e = environ; *e != nullptr; ++e) {
    if (!launcher_variable(*e)) environment_.emplace_back(*e);
  }
  // `--device cuda` spreads the runs over this machine's GPUs (`--jobs` at a time in all).
  if (o_.device == "cuda") gpu_load_.assign(static_cast<size_t>(std::max(device_count(DeviceKind::kCuda), 0)), 0);
}

void JobProcesses::start(int i, int threads) {
  const Job& j = g_.at(i);
  const fs::path dir = fs::path(o_.out) / j.dir;
  fs::create_directories(dir);
  // The record, read once: this attempt's fields over the earlier attempts'.
  json record = read_run_record_json(o_.out, j);
  record["threads_by_attempt"].push_back(threads);
  record.update({{"status", "running"},
                 {"attempts", record.value("attempts", 0) + 1},
                 {"node", node_},
                 {"rank", Comm::world().rank()},
                 {"started_at", unix_seconds()}});
  started_[i] = std::chrono::steady_clock::now();
  save_run_record(o_.out, j, record);
  json config = j.config;
  if (j.late_config) {
    try {
      config = j.late_config(o_.out);
    } catch (const std::exception& e) {  // e.g. a dependency's metrics unreadable: this job fails, not the runner
      write_file_atomic((dir / "log.txt").string(), std::string(e.what()) + "\n");
      end(i, 1, false);
      return;
    }
  }
  if (j.internal) {
    try {
      j.internal(o_.out, dir.string());
      end(i, 0, true);
    } catch (const std::exception& e) {
      fmt::print(stderr, "reproduce: {} failed: {}\n", j.title, e.what());
      write_file_atomic((dir / "log.txt").string(), std::string(e.what()) + "\n");
      end(i, 1, false);
    }
    return;
  }
  const JobSchema& schema = job_schema(j.schema);
  if (schema.find("threads")) config["threads"] = threads;
  if (schema.find("device")) {
    config["device"] = spread_device(o_.device, gpu_load_);
    if (config["device"] != o_.device) gpu_of_[i] = parse_device(config["device"].get<std::string>()).index;
  }
  // The job file: what the command runs, readable and rerunnable by hand from <out>.
  const std::string job_file = j.dir + "/job.toml";
  write_file_atomic((fs::path(o_.out) / job_file).string(),
                    config_to_toml(config,
                                   fmt::format("{}\nrun from {}: tlm {} --config {}", j.title, o_.out,
                                               fmt::join(schema.command(), " "), job_file),
                                   &schema));
  std::vector<std::string> argv_s = {o_.tlm_exe};
  argv_s.insert(argv_s.end(), schema.command().begin(), schema.command().end());
  argv_s.push_back("--config");
  argv_s.push_back(job_file);
  // Everything the child needs is made before fork: between fork and exec it only calls
  // async-signal-safe functions.
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : environment_) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string log = (dir / "log.txt").string();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  TLM_CHECK(pid >= 0, "fork failed for {}", j.title);
  if (pid == 0) {
    // The child: dies with its parent (SIGTERM lets a trainer checkpoint first). A process group
    // of its own, so a signal to the runner's group (a launcher's kill, a terminal's Ctrl-C)
    // reaches it only as the runner's SIGTERM, or its parent's death; no descriptor of the
    // parent's (MPI's sockets) is kept.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(130);
    setpgid(0, 0);
    close_range(3, ~0U, 0);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (chdir(o_.out.c_str()) != 0) _exit(127);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  running_[pid] = i;
  record.update({{"pid", pid}, {"command", argv_s}, {"threads", threads}});
  save_run_record(o_.out, j, record);
}

void JobProcesses::end(int i, int code, bool done) {
  const Job& j = g_.at(i);
  if (const auto gpu = gpu_of_.find(i); gpu != gpu_of_.end()) {
    --gpu_load_[gpu->second];
    gpu_of_.erase(gpu);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_[i]).count();
  const bool stopped = code == 130 || code == 128 + SIGTERM || code == 128 + SIGINT;
  json record = read_run_record_json(o_.out, j);
  record.update({{"status", done      ? "finished"
                            : stopped ? "stopped"
                                      : "failed"},
                 {"exit_code", code},
                 {"wall_seconds", record.value("wall_seconds", 0.0) + wall},
                 {"ended_at", unix_seconds()}});
  save_run_record(o_.out, j, record);
  ended_.push_back({i, code, done, wall});
}

std::vector<EndedJob> JobProcesses::reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    int status = 0;
    if (waitpid(it->first, &status, WNOHANG) != it->first) {
      ++it;
      continue;
    }
    const int i = it->second;
    it = running_.erase(it);
    const Job& j = g_.at(i);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const bool done = code == 0 && fs::exists(fs::path(o_.out) / j.dir / j.done);
    if (code == 0 && !done) fmt::print(stderr, "reproduce: {} exited 0 without writing {}\n", j.title, j.done);
    end(i, code, done);
  }
  std::vector<EndedJob> out;
  out.swap(ended_);
  return out;
}

void JobProcesses::stop(int i) {
  for (const auto& [pid, job] : running_) {
    if (job == i) kill(pid, SIGTERM);
  }
}

void JobProcesses::stop_all() {
  for (const auto& [pid, job] : running_) kill(pid, SIGTERM);
}

}  // namespace tlm::experiment
