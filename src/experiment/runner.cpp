#include "experiment/runner.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <thread>

#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/job_config.h"

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::atomic<int> g_stop{0};
extern "C" void on_runner_signal(int sig) { g_stop = sig; }

enum class State { kPending, kRunning, kDone, kFailed, kBlocked };

json read_record(const fs::path& dir) {
  const fs::path p = dir / "runner.json";
  if (!fs::exists(p)) return json::object();
  return read_json_file(p.string());  // written atomically: a damaged one is foreign, and said so
}

// A trainer still running from an earlier, killed runner (its children get SIGTERM when the
// runner dies and checkpoint first) holds its run folder's lock: wait for it before starting.
void wait_for_previous(const fs::path& dir) {
  for (int i = 0; i < 600 && FolderLock::is_held(dir.string()); ++i) {
    if (i == 0) {
      fmt::print(stderr, "reproduce: waiting for {} ({}) to finish\n", dir.string(), FolderLock::holder(dir.string()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  TLM_CHECK(!FolderLock::is_held(dir.string()), "{} is still in use ({}); stop that process first", dir.string(),
            FolderLock::holder(dir.string()));
}

std::string tail_of(const fs::path& log, size_t bytes) {
  if (!fs::exists(log)) return "";
  const std::string text = read_file(log.string());
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

class Runner {
 public:
  Runner(const JobGraph& g, const RunnerOptions& o)
      : g_(g), o_(o), state_(g.jobs().size(), State::kPending), order_(launch_order()) {}

  RunSummary run() {
    g_stop = 0;
    // The runner's own handlers: a stop is passed on to the running commands.
    struct sigaction sa = {}, old_int = {}, old_term = {};
    sa.sa_handler = on_runner_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    for (size_t i = 0; i < g_.jobs().size(); ++i) {
      const Job& j = g_.at(static_cast<int>(i));
      const fs::path dir = fs::path(o_.out) / j.dir;
      wait_for_previous(dir);
      if (fs::exists(dir / j.done)) {
        state_[i] = State::kDone;
        ++summary_.skipped;
      }
    }
    fmt::print(stderr, "reproduce: {} runs, {} already finished\n", g_.jobs().size(), summary_.skipped);
    while (true) {
      if (g_stop != 0 && !forwarded_) {
        forwarded_ = true;
        summary_.interrupted = true;
        for (const auto& [pid, i] : running_) kill(pid, SIGTERM);
      }
      if (!forwarded_) start_ready();
      if (running_.empty()) break;
      // Polled, so a signal that lands just before the wait is still seen within 50 ms.
      int status = 0;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      finish(pid, status);
    }
    for (size_t i = 0; i < state_.size(); ++i) {
      if (state_[i] == State::kBlocked) ++summary_.blocked;
    }
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    return summary_;
  }

 private:
  int slots_used() const {
    int n = 0;
    for (const auto& [pid, i] : running_) n += g_.at(i).exclusive ? o_.jobs : 1;
    return n;
  }

  // Pre-training runs first (the long ones that fine-tuning waits for), then the rest in plan order.
  std::vector<size_t> launch_order() const {
    std::vector<size_t> order(state_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return (g_.at(static_cast<int>(a)).kind == "pretrain") > (g_.at(static_cast<int>(b)).kind == "pretrain");
    });
    return order;
  }

  void start_ready() {
    for (size_t i : order_) {
      if (state_[i] != State::kPending) continue;
      bool ready = true, blocked = false;
      for (int d : g_.at(static_cast<int>(i)).deps) {
        if (state_[d] == State::kFailed || state_[d] == State::kBlocked) blocked = true;
        if (state_[d] != State::kDone) ready = false;
      }
      if (blocked) {
        state_[i] = State::kBlocked;
        continue;
      }
      if (!ready) continue;
      const Job& j = g_.at(static_cast<int>(i));
      const int used = slots_used();
      if (j.exclusive ? used > 0 : used >= o_.jobs) {
        if (j.exclusive) return;  // keep order: nothing later may overtake a waiting timed job
        continue;
      }
      start(static_cast<int>(i));
      if (g_stop != 0) return;
    }
  }

  void record(const Job& j, const json& fields) {
    const fs::path dir = fs::path(o_.out) / j.dir;
    json r = read_record(dir);
    for (const auto& [k, v] : fields.items()) r[k] = v;
    r["id"] = j.id;
    r["kind"] = j.kind;
    r["title"] = j.title;
    write_file_atomic((dir / "runner.json").string(), r.dump(2) + "\n");
  }

  void start(int i) {
    const Job& j = g_.at(i);
    const fs::path dir = fs::path(o_.out) / j.dir;
    fs::create_directories(dir);
    const json prev = read_record(dir);
    const int attempt = prev.value("attempts", 0) + 1;
    json config = j.config;
    if (j.late_config) {
      try {
        config = j.late_config(o_.out);
      } catch (const std::exception& e) {  // e.g. a dependency's metrics unreadable: this job fails, not the runner
        started_[i] = std::chrono::steady_clock::now();
        write_file_atomic((dir / "log.txt").string(), std::string(e.what()) + "\n");
        finish_job(i, false, 1);
        return;
      }
    }
    const bool resume = j.trainer && !latest_checkpoint(dir.string()).empty();
    started_[i] = std::chrono::steady_clock::now();
    ++launched_;
    fmt::print(stderr, "reproduce: [{}] {}{} ({})\n", launched_, resume ? "resume " : "", j.title, j.dir);
    if (j.internal) {
      record(j, {{"status", "running"}, {"attempts", attempt}});
      try {
        j.internal(o_.out, dir.string());
        finish_job(i, true, 0);
      } catch (const std::exception& e) {
        fmt::print(stderr, "reproduce: {} failed: {}\n", j.title, e.what());
        write_file_atomic((dir / "log.txt").string(), std::string(e.what()) + "\n");
        finish_job(i, false, 1);
      }
      return;
    }
    const int threads = j.exclusive ? o_.threads : std::max(1, o_.threads / o_.jobs);
    const JobSchema& schema = job_schema(j.schema);
    if (schema.find("threads")) config["threads"] = threads;
    if (schema.find("device")) config["device"] = o_.device;
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
    const std::string log = (dir / "log.txt").string();
    const pid_t parent = getpid();
    const pid_t pid = fork();
    TLM_CHECK(pid >= 0, "fork failed for {}", j.title);
    if (pid == 0) {
      // The child: dies with the runner (SIGTERM lets a trainer checkpoint first).
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(130);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      if (chdir(o_.out.c_str()) != 0) _exit(127);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) _exit(127);
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
      std::vector<char*> argv;
      for (auto& s : argv_s) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    running_[pid] = i;
    state_[i] = State::kRunning;
    record(j, {{"status", "running"}, {"pid", pid}, {"attempts", attempt}, {"command", argv_s}, {"threads", threads}});
  }

  void finish(pid_t pid, int status) {
    const auto it = running_.find(pid);
    if (it == running_.end()) return;
    const int i = it->second;
    running_.erase(it);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const Job& j = g_.at(i);
    const bool done = code == 0 && fs::exists(fs::path(o_.out) / j.dir / j.done);
    if (code == 0 && !done) fmt::print(stderr, "reproduce: {} exited 0 without writing {}\n", j.title, j.done);
    finish_job(i, done, code);
  }

  void finish_job(int i, bool ok, int code) {
    const Job& j = g_.at(i);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_[i]).count();
    const fs::path dir = fs::path(o_.out) / j.dir;
    const json prev = read_record(dir);
    const bool stopped = !ok && (code == 130 || code == 128 + SIGTERM || code == 128 + SIGINT) && g_stop != 0;
    const std::string status = ok ? "finished" : stopped ? "interrupted" : "failed";
    json fields = {{"status", status}, {"exit_code", code}, {"wall_seconds", prev.value("wall_seconds", 0.0) + wall}};
    record(j, fields);
    if (ok) {
      state_[i] = State::kDone;
      ++summary_.finished;
      fmt::print(stderr, "reproduce: finished {} in {:.1f} s\n", j.title, wall);
    } else if (stopped) {
      state_[i] = State::kPending;
    } else {
      state_[i] = State::kFailed;
      ++summary_.failed;
      const std::string log = (dir / "log.txt").string();
      summary_.failures.push_back(j.title + ": " + log);
      fmt::print(stderr, "reproduce: FAILED {} (exit {}), see {}:\n{}\n", j.title, code, log, tail_of(log, 1500));
    }
  }

  const JobGraph& g_;
  RunnerOptions o_;
  std::vector<State> state_;
  std::vector<size_t> order_;
  std::map<pid_t, int> running_;
  std::map<int, std::chrono::steady_clock::time_point> started_;
  RunSummary summary_;
  bool forwarded_ = false;
  int launched_ = 0;
};

}  // namespace

RunSummary run_jobs(const JobGraph& graph, const RunnerOptions& options) { return Runner(graph, options).run(); }

RunRecord read_run_record(const std::string& out, const Job& job) {
  const json r = read_record(fs::path(out) / job.dir);
  return {r.value("wall_seconds", 0.0), r.value("attempts", 0)};
}

}  // namespace tlm::experiment
