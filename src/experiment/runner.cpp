#include "experiment/runner.h"

#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <thread>

#include "experiment/job_processes.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/comm.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/hash.h"

namespace tlm::experiment {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<int> g_stop{0};
extern "C" void on_runner_signal(int sig) { g_stop = sig; }

// The runner's own SIGINT/SIGTERM handlers for its lifetime: a stop is passed on to the runs.
class StopSignals {
 public:
  StopSignals() {
    g_stop = 0;
    struct sigaction sa = {};
    sa.sa_handler = on_runner_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ = {}, old_term_ = {};
};

// Messages between the scheduler (rank 0) and the ranks that execute runs: kind, then values.
enum Message : int64_t {
  kHello = 1,    // rank -> scheduler: node hash, threads, jobs, hash of the job graph
  kStart,        // scheduler -> rank: job, threads
  kEnded,        // rank -> scheduler: job, exit code, done, wall milliseconds
  kStop,         // scheduler -> rank: job (SIGTERM it)
  kInterrupted,  // rank -> scheduler: this rank was told to stop
  kQuit,         // scheduler -> rank: all ended; exit code
};
constexpr int kMessageSize = 5;
using Packet = std::array<int64_t, kMessageSize>;

void pause_briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

enum class State { kPending, kRunning, kDone, kFailed, kBlocked };

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

int64_t node_hash(const Comm& comm) { return static_cast<int64_t>(hash_string(comm.node_name()) >> 1); }

// Every rank expands the plan itself and is sent job indices: their runs must be the same (a
// precision "auto" resolved differently, another binary or data folder would name others).
int64_t graph_hash(const JobGraph& g) {
  uint64_t h = hash_string("jobs");
  for (const Job& j : g.jobs()) h = hash_combine(h, hash_string(j.id));
  return static_cast<int64_t>(h >> 1);
}

Packet hello_of(const JobGraph& g, const RunnerOptions& o, const Comm& comm) {
  return {kHello, node_hash(comm), o.threads, o.jobs, graph_hash(g)};
}

// A rank bound to fewer cores than its runs are given (mpirun binds 2 ranks to a core each by
// default) would crowd every run onto them.
void warn_if_bound(const RunnerOptions& o) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
  const int cores = CPU_COUNT(&set);
  if (cores < o.threads) {
    fmt::print(stderr,
               "reproduce: warning: this rank may use {} core(s) but gives its runs {} threads in all; the launcher "
               "bound it (mpirun --bind-to none, srun --cpu-bind=none lift that)\n",
               cores, o.threads);
  }
}

// One machine: its threads and runs at a time, its ranks, and what runs on it now.
struct Node {
  int threads = 1, jobs = 1;
  std::vector<int> ranks;
  int used = 0, running = 0;
  int reserved_for = -1;  // a timed job waiting for the machine to empty: nothing else starts here
  int share() const { return std::max(1, threads / jobs); }
  int free() const { return threads - used; }
};

struct Placement {
  int node = 0, rank = 0, threads = 1;
  Clock::time_point started;
  uintmax_t log_bytes = 0;  // of the run's log.jsonl at its start: a trainer that logged has begun stepping
  int grow_to = 0;          // > 0: stopped to be continued with this many threads
};

uintmax_t size_or_zero(const fs::path& p) {
  std::error_code ec;
  const uintmax_t n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

class Scheduler {
 public:
  Scheduler(const JobGraph& g, const RunnerOptions& o, const Comm& comm)
      : g_(g),
        o_(o),
        comm_(comm),
        local_(g, o, comm.node_name()),
        state_(g.jobs().size(), State::kPending),
        order_(launch_order()) {}

  RunSummary run() {
    const StopSignals signals;
    meet_ranks();
    for (size_t i = 0; i < g_.jobs().size(); ++i) {
      const Job& j = g_.at(static_cast<int>(i));
      wait_for_previous(fs::path(o_.out) / j.dir);
      if (fs::exists(fs::path(o_.out) / j.dir / j.done)) {
        state_[i] = State::kDone;
        ++summary_.skipped;
      }
    }
    fmt::print(stderr, "reproduce: {} runs, {} already finished\n", g_.jobs().size(), summary_.skipped);
    while (true) {
      if (g_stop != 0 && !forwarded_) {
        forwarded_ = true;
        summary_.interrupted = true;
        for (const auto& [i, p] : placed_) stop_on(p.rank, i);
      }
      if (!forwarded_) {
        start_ready();
        grow_if_idle();
      }
      if (placed_.empty()) break;
      if (!poll()) pause_briefly();
    }
    for (size_t i = 0; i < state_.size(); ++i) {
      if (state_[i] == State::kBlocked) ++summary_.blocked;
    }
    const Packet quit = {kQuit, summary_.interrupted ? 130 : summary_.failed > 0 ? 1 : 0};
    for (int r = 1; r < comm_.size(); ++r) comm_.send(r, quit.data(), kMessageSize);
    return summary_;
  }

 private:
  // Every rank says which machine it is on and what that machine gives runs.
  void meet_ranks() {
    std::map<int64_t, int> node_of_hash;
    auto add = [&](int rank, const Packet& hello) {
      auto [it, fresh] = node_of_hash.try_emplace(hello[1], static_cast<int>(nodes_.size()));
      if (fresh) nodes_.push_back({static_cast<int>(hello[2]), static_cast<int>(hello[3])});
      nodes_[it->second].ranks.push_back(rank);
    };
    const Packet mine = hello_of(g_, o_, comm_);
    add(0, mine);
    for (int heard = 1; heard < comm_.size();) {
      Packet m;
      int from = 0;
      if (!comm_.try_receive(m.data(), kMessageSize, &from)) {
        pause_briefly();
        continue;
      }
      TLM_CHECK(m[0] == kHello, "rank {} spoke before saying hello", from);
      TLM_CHECK(m[4] == mine[4],
                "rank {} expanded the plan into other runs than rank 0 (another tlm binary, data folder or "
                "precision resolved on its machine): every rank must see the same plan, data and tlm",
                from);
      add(from, m);
      ++heard;
    }
    if (comm_.distributed()) {
      std::string list;
      for (size_t n = 0; n < nodes_.size(); ++n) {
        list += fmt::format("{}machine {}: ranks {}, {} threads, {} runs at a time", n ? "; " : "", n + 1,
                            fmt::join(nodes_[n].ranks, ","), nodes_[n].threads, nodes_[n].jobs);
      }
      fmt::print(stderr, "reproduce: {} ranks on {} machine(s) ({})\n", comm_.size(), nodes_.size(), list);
    }
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

  // Whether job i's dependencies have finished; marks it blocked when one failed.
  bool ready(size_t i) {
    bool all_done = true;
    for (int d : g_.at(static_cast<int>(i)).deps) {
      if (state_[d] == State::kFailed || state_[d] == State::kBlocked) {
        state_[i] = State::kBlocked;
        return false;
      }
      if (state_[d] != State::kDone) all_done = false;
    }
    return all_done;
  }

  void start_ready() {
    // A trainer stopped to grow goes back first, on its machine, with the threads counted when it
    // was stopped (fewer if others have started there since).
    for (auto it = regrow_on_.begin(); it != regrow_on_.end();) {
      const auto [i, to] = *it;
      it = regrow_on_.erase(it);
      launch(i, to.first, std::max(1, std::min(to.second, nodes_[to.first].free())));
    }
    for (size_t i : order_) {
      if (state_[i] != State::kPending || !ready(i)) continue;
      const Job& j = g_.at(static_cast<int>(i));
      if (j.exclusive) {
        // A timed run has its machine to itself: it starts on any empty one (not held for another
        // timed run), else holds the least busy until it is empty.
        const int held = reserved_node(static_cast<int>(i));
        int n = -1;
        for (size_t k = 0; k < nodes_.size() && n < 0; ++k) {
          const int r = nodes_[k].reserved_for;
          if (nodes_[k].running == 0 && (r < 0 || r == static_cast<int>(i))) n = static_cast<int>(k);
        }
        if (n < 0) {
          if (held < 0) {
            const int least = least_busy_unreserved();
            if (least >= 0) nodes_[least].reserved_for = static_cast<int>(i);
          }
          continue;
        }
        if (held >= 0) nodes_[held].reserved_for = -1;
        launch(static_cast<int>(i), n, nodes_[n].threads);
      } else {
        int best = -1;
        for (size_t n = 0; n < nodes_.size(); ++n) {
          const Node& node = nodes_[n];
          if (node.reserved_for >= 0 || node.running >= node.jobs || node.free() < node.share()) continue;
          if (best < 0 || node.free() > nodes_[best].free()) best = static_cast<int>(n);
        }
        if (best < 0) continue;
        launch(static_cast<int>(i), best, nodes_[best].share());
      }
      if (g_stop != 0) return;
    }
  }

  int reserved_node(int i) const {
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (nodes_[n].reserved_for == i) return static_cast<int>(n);
    }
    return -1;
  }

  int least_busy_unreserved() const {
    int best = -1;
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (nodes_[n].reserved_for >= 0) continue;
      if (best < 0 || nodes_[n].used < nodes_[best].used) best = static_cast<int>(n);
    }
    return best;
  }

  // Threads that would sit idle (nothing but a timed run that waits for its machine to empty is
  // ready to start) go to a CPU trainer of their machine that has run a while and logged a step
  // (so it checkpoints on SIGTERM): it is stopped at its next step and continued with them. One
  // machine grows one trainer at a time. A timed run waiting for the machine then starts sooner.
  void grow_if_idle() {
    if (!o_.grow_threads || g_stop != 0 || o_.device.rfind("cpu", 0) != 0) return;
    for (size_t i = 0; i < state_.size(); ++i) {
      if (state_[i] == State::kPending && !g_.at(static_cast<int>(i)).exclusive && ready(i)) return;
    }
    const auto now = Clock::now();
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (nodes_[n].free() <= 0 || growing_on(static_cast<int>(n))) continue;
      int pick = -1;
      for (const auto& [i, p] : placed_) {
        const Job& j = g_.at(i);
        if (p.node != static_cast<int>(n) || !j.trainer || j.exclusive) continue;
        if (std::chrono::duration<double>(now - p.started).count() < o_.grow_after_seconds) continue;
        if (size_or_zero(fs::path(o_.out) / j.dir / "log.jsonl") <= p.log_bytes) continue;
        // Pre-training first (fine-tuning waits on it), then the one that started first.
        if (pick < 0 || (j.kind == "pretrain" && g_.at(pick).kind != "pretrain") ||
            (j.kind == g_.at(pick).kind && p.started < placed_.at(pick).started)) {
          pick = i;
        }
      }
      if (pick < 0) continue;
      Placement& p = placed_.at(pick);
      p.grow_to = p.threads + nodes_[n].free();
      fmt::print(stderr, "reproduce: {} threads idle: continuing {} with {} threads (from its checkpoint)\n",
                 nodes_[n].free(), g_.at(pick).title, p.grow_to);
      stop_on(p.rank, pick);
    }
  }

  bool growing_on(int n) const {
    for (const auto& [i, p] : placed_) {
      if (p.node == n && p.grow_to > 0) return true;
    }
    for (const auto& [i, to] : regrow_on_) {
      if (to.first == n) return true;
    }
    return false;
  }

  void launch(int i, int n, int threads) {
    Node& node = nodes_[n];
    // The rank of the machine with the fewest runs (internal work runs inside a rank).
    int rank = node.ranks[0];
    for (int r : node.ranks) {
      if (runs_of_rank(r) < runs_of_rank(rank)) rank = r;
    }
    const Job& j = g_.at(i);
    const bool resume = j.trainer && !latest_checkpoint((fs::path(o_.out) / j.dir).string()).empty();
    ++launched_;
    fmt::print(stderr, "reproduce: [{}] {}{} ({}){}\n", launched_, resume ? "resume " : "", j.title, j.dir,
               comm_.distributed() ? fmt::format(" on rank {}", rank) : "");
    node.used += threads;
    ++node.running;
    placed_[i] = {n, rank, threads, Clock::now(), size_or_zero(fs::path(o_.out) / j.dir / "log.jsonl")};
    state_[i] = State::kRunning;
    if (rank == 0) {
      local_.start(i, threads);
    } else {
      const Packet m = {kStart, i, threads};
      comm_.send(rank, m.data(), kMessageSize);
    }
  }

  int runs_of_rank(int rank) const {
    int k = 0;
    for (const auto& [i, p] : placed_) k += p.rank == rank;
    return k;
  }

  void stop_on(int rank, int i) {
    if (rank == 0) {
      local_.stop(i);
    } else {
      const Packet m = {kStop, i};
      comm_.send(rank, m.data(), kMessageSize);
    }
  }

  // Takes what has ended here and what the ranks say; whether anything happened.
  bool poll() {
    bool heard = false;
    for (const EndedJob& e : local_.reap()) {
      ended(e);
      heard = true;
    }
    Packet m;
    int from = 0;
    while (comm_.try_receive(m.data(), kMessageSize, &from)) {
      heard = true;
      if (m[0] == kEnded) {
        ended({static_cast<int>(m[1]), static_cast<int>(m[2]), m[3] != 0, static_cast<double>(m[4]) / 1000});
      } else if (m[0] == kInterrupted) {
        fmt::print(stderr, "reproduce: rank {} was told to stop: stopping every run\n", from);
        if (g_stop == 0) g_stop = SIGTERM;
      }
    }
    return heard;
  }

  void ended(const EndedJob& e) {
    const auto it = placed_.find(e.job);
    if (it == placed_.end()) return;
    const Placement p = it->second;
    placed_.erase(it);
    nodes_[p.node].used -= p.threads;
    --nodes_[p.node].running;
    const Job& j = g_.at(e.job);
    // The rank that ran it has recorded its end in runner.json; here it is scheduled.
    const bool stopped = !e.done && (e.code == 130 || e.code == 128 + SIGTERM || e.code == 128 + SIGINT);
    if (p.grow_to > 0 && stopped && g_stop == 0) {
      state_[e.job] = State::kPending;
      regrow_on_[e.job] = {p.node, p.grow_to};
      ++summary_.regrown;
      return;
    }
    const bool interrupted = stopped && g_stop != 0;
    if (e.done) {
      state_[e.job] = State::kDone;
      ++summary_.finished;
      fmt::print(stderr, "reproduce: finished {} in {:.1f} s\n", j.title, e.wall_seconds);
    } else if (interrupted) {
      state_[e.job] = State::kPending;
    } else {
      state_[e.job] = State::kFailed;
      ++summary_.failed;
      const std::string log = (fs::path(o_.out) / j.dir / "log.txt").string();
      summary_.failures.push_back(j.title + ": " + log);
      fmt::print(stderr, "reproduce: FAILED {} (exit {}), see {}:\n{}\n", j.title, e.code, log, tail_of(log, 1500));
    }
  }

  const JobGraph& g_;
  RunnerOptions o_;
  const Comm& comm_;
  JobProcesses local_;
  std::vector<State> state_;
  std::vector<size_t> order_;
  std::vector<Node> nodes_;
  std::map<int, Placement> placed_;               // running job -> where
  std::map<int, std::pair<int, int>> regrow_on_;  // job stopped to grow -> its machine and threads
  RunSummary summary_;
  bool forwarded_ = false;
  int launched_ = 0;
};

// A rank other than 0: executes the runs the scheduler sends until it says quit.
RunSummary execute_for_scheduler(const JobGraph& g, const RunnerOptions& o, const Comm& comm) {
  const StopSignals signals;
  JobProcesses local(g, o, comm.node_name());
  const Packet hello = hello_of(g, o, comm);
  comm.send(0, hello.data(), kMessageSize);
  bool told = false;
  while (true) {
    if (g_stop != 0 && !told) {
      told = true;
      local.stop_all();
      const Packet m = {kInterrupted};
      comm.send(0, m.data(), kMessageSize);
    }
    bool heard = false;
    for (const EndedJob& e : local.reap()) {
      const Packet m = {kEnded, e.job, e.code, e.done, static_cast<int64_t>(e.wall_seconds * 1000)};
      comm.send(0, m.data(), kMessageSize);
      heard = true;
    }
    Packet m;
    int from = 0;
    if (comm.try_receive(m.data(), kMessageSize, &from)) {
      heard = true;
      if (m[0] == kStart) {
        local.start(static_cast<int>(m[1]), static_cast<int>(m[2]));
      } else if (m[0] == kStop) {
        local.stop(static_cast<int>(m[1]));
      } else if (m[0] == kQuit) {
        RunSummary s;
        s.interrupted = m[1] == 130;
        return s;
      }
    }
    if (!heard) pause_briefly();
  }
}

}  // namespace

RunSummary run_jobs(const JobGraph& graph, const RunnerOptions& options) {
  const Comm& comm = Comm::world();
  if (comm.distributed()) warn_if_bound(options);
  if (!comm.leader()) return execute_for_scheduler(graph, options, comm);
  return Scheduler(graph, options, comm).run();
}

RunRecord read_run_record(const std::string& out, const Job& job) {
  const json r = read_run_record_json(out, job);
  return {r.value("wall_seconds", 0.0), r.value("attempts", 0)};
}

}  // namespace tlm::experiment
