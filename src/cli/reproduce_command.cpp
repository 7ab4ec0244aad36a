// tlm reproduce (an experiment plan, run to a report) and tlm report (the report, rebuilt).
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "experiment/plan.h"
#include "experiment/report.h"
#include "experiment/results.h"
#include "experiment/runner.h"
#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/device.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/machine.h"

namespace tlm::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct ReproduceArgs {
  std::string preset, out, data_dir, device, precision;
  int jobs = 0, threads = 0;
  double scale = 1, grow_after = 10;
  bool dump_plan = false, dry_run = false, fixed_threads = false;
};

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  TLM_CHECK(!ec, "cannot find the tlm binary (/proc/self/exe): {}", ec.message());
  return p.string();
}

int run_reproduce(const ReproduceArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  // Under mpirun every rank expands the same plan; rank 0 alone prints, writes and schedules.
  const Comm& comm = Comm::world();
  json plan = experiment::load_plan(a.preset);
  experiment::scale_plan(plan, a.scale);
  if ((a.dump_plan || a.dry_run) && !comm.leader()) return 0;
  if (a.dump_plan) {
    fmt::print("{}\n", plan.dump(2));
    return 0;
  }
  const std::string out = fs::absolute(a.out).lexically_normal().string();
  // Where the runs compute: --device, else the plan's device, else the CPU (not part of any run's
  // identity: the manifests record it).
  const std::string device = !a.device.empty() ? a.device : plan.value("device", std::string("cpu"));
  // The precision every run computes in: --precision, else the plan's, else auto (training's
  // default); auto is resolved here, on this machine and device, because the resolved precision
  // names the runs.
  const std::string requested = !a.precision.empty() ? a.precision : plan.value("precision", std::string("auto"));
  std::string note;
  const Precision precision = resolve_precision(parse_precision(requested), parse_device(device), &note);
  if (!note.empty()) fmt::print(stderr, "reproduce: {}\n", note);
  experiment::ExpandOptions eo;
  eo.precision = precision_name(precision);
  if (!a.data_dir.empty()) {
    eo.data_dir = fs::absolute(a.data_dir).lexically_normal().string();
    TLM_CHECK(fs::is_directory(eo.data_dir), "--data-dir {}: no such folder", a.data_dir);
  }
  // The whole plan, every run's configuration included, is checked here: before the folder is
  // made or locked and before any run starts.
  const experiment::PlanRuns runs = experiment::expand_plan(plan, eo);
  if (a.dry_run) {
    for (const auto& j : runs.graph.jobs()) {
      const bool done = fs::exists(fs::path(out) / j.dir / j.done);
      fmt::print("{} {:<40} {}\n", done ? "done   " : "pending", j.dir, j.title);
    }
    return 0;
  }
  std::unique_ptr<FolderLock> lock;
  if (comm.leader()) {
    fs::create_directories(out);
    lock = std::make_unique<FolderLock>(out, "experiment folder");
    write_file_atomic((fs::path(out) / "plan.json").string(), plan.dump(2) + "\n");
  }
  experiment::RunnerOptions ro;
  ro.out = out;
  ro.tlm_exe = self_exe();
  ro.threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ro.jobs = a.jobs > 0 ? a.jobs : ro.threads;
  ro.device = device;
  ro.grow_threads = !a.fixed_threads;
  ro.grow_after_seconds = a.grow_after;
  const experiment::RunSummary s = experiment::run_jobs(runs.graph, ro);
  if (!comm.leader()) return s.interrupted ? 130 : 0;  // rank 0 reports (and fails the job if a run failed)
  fmt::print(stderr, "reproduce: {} finished, {} skipped (done before), {} failed, {} not started{}\n", s.finished,
             s.skipped, s.failed, s.blocked,
             s.regrown > 0 ? fmt::format("; {} continued with more threads", s.regrown) : "");
  if (s.interrupted) {
    fmt::print(stderr, "reproduce: stopped; run the same command again to continue\n");
    return 130;
  }
  if (s.failed > 0) {
    std::string list;
    for (const auto& f : s.failures) list += "\n  " + f;
    throw Error(fmt::format("{} run(s) failed:{}", s.failed, list));
  }
  json manifest = build_facts();
  manifest.update({{"preset", a.preset},
                   {"scale", a.scale},
                   {"out", out},
                   {"data_dir", runs.roles["data_dir"]},
                   {"vocab", runs.roles["vocab"]},
                   {"threads", ro.threads},
                   {"jobs", ro.jobs},
                   {"ranks", comm.size()},
                   {"mpi", comm.describe()},
                   {"grow_threads", ro.grow_threads},
                   {"runs_continued_with_more_threads_this_session", s.regrown},
                   {"device", ro.device},
                   {"precision", eo.precision},
                   {"finished_at", now_utc()},
                   {"runs_finished_this_session", s.finished},
                   {"runs_skipped_this_session", s.skipped},
                   {"wall_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
  const json results = experiment::collect_results(runs, plan, out, manifest);
  write_file_atomic((fs::path(out) / "results.json").string(), results.dump(2) + "\n");
  experiment::write_report(results, out);
  for (const auto& f : results["findings"]) {
    fmt::print("{} {}: {}\n", f["id"].get<std::string>(), f["verdict"].get<std::string>(),
               f["claim"].get<std::string>());
  }
  fmt::print("report: {}/report.html (and report.md, results.json)\n", out);
  return 0;
}

}  // namespace

void add_reproduce_commands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ReproduceArgs>();
  std::string presets;
  for (const auto& n : experiment::preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  auto* cmd = app.add_subcommand("reproduce", "run an experiment plan (the paper's four findings) to a report");
  cmd->add_option("--preset", a->preset, "a preset (" + presets + ") or a plan file (TOML)")->required();
  cmd->add_option("--out", a->out, "experiment folder (runs, results.json, report)")->required();
  cmd->add_option("--jobs", a->jobs, "runs at a time on each machine (0: one per thread)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", a->threads, "threads to use on each machine (0: all its cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--precision", a->precision,
                  "precision every run computes in: fp32, bf16 or auto (default: the plan's, else auto: bf16 where "
                  "the CPU computes it natively); "
                  "a resolved bf16 is part of every run's name")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  cmd->add_option("--device", a->device,
                  "device every run computes on: cpu, cuda or cuda:N (default: the plan's, else cpu)");
  cmd->add_option("--data-dir", a->data_dir, "data folder the plan's files are relative to (default: the plan's)");
  cmd->add_option("--scale", a->scale, "shrink sizes and epochs by this factor, in (0, 1]")->capture_default_str();
  cmd->add_flag("--fixed-threads", a->fixed_threads,
                "keep every run at the threads it started with (a run's bits depend on its thread count); by "
                "default threads left idle with nothing to start go to a running trainer, continued from its "
                "checkpoint");
  cmd->add_option("--grow-after", a->grow_after, "seconds a trainer runs before it may be given idle threads")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--dump-plan", a->dump_plan, "print the resolved plan as JSON and exit");
  cmd->add_flag("--dry-run", a->dry_run, "list the runs (done or pending) without running them");
  cmd->callback([a, exit_code] { *exit_code = run_reproduce(*a); });

  auto dir = std::make_shared<std::string>();
  auto with = std::make_shared<std::vector<std::string>>();
  auto* rep = app.add_subcommand("report", "rebuild report.md and report.html from an experiment's results.json");
  rep->add_option("dir", *dir, "experiment folder (tlm reproduce --out)")->required();
  rep->add_option("--with", *with,
                  "another experiment folder of the same plan (other seeds or kernels) to compare verdicts with "
                  "(repeatable)");
  rep->callback([dir, with] {
    auto results_of = [](const std::string& folder) {
      const std::string path = (fs::path(folder) / "results.json").string();
      TLM_CHECK(fs::exists(path), "{}: no results.json (run tlm reproduce first)", folder);
      return read_json_file(path);
    };
    const json results = results_of(*dir);
    std::vector<experiment::ComparedRun> compared;
    for (const auto& other : *with) {
      json r = results_of(other);
      TLM_CHECK(r["plan"].value("name", "") == results["plan"].value("name", ""),
                "{} ran plan \"{}\", {} plan \"{}\": compare runs of one plan", other, r["plan"].value("name", ""),
                *dir, results["plan"].value("name", ""));
      compared.push_back({fs::path(other).lexically_normal().filename().string(), std::move(r)});
    }
    try {
      experiment::write_report(results, *dir, compared);
    } catch (const json::exception& e) {
      throw Error(fmt::format("{}: not a results file tlm wrote ({})", *dir, e.what()));
    }
    fmt::print("report: {}/report.html (and report.md)\n", *dir);
  });
}

}  // namespace tlm::cli
