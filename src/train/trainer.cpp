#include "tlm/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <optional>

#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/comm.h"
#include "tlm/evaluate.h"
#include "tlm/file_io.h"
#include "tlm/predictions.h"
#include "tlm/train_loop.h"
#include "train/run_files.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// Installs SIGINT/SIGTERM handlers for the life of a training run.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  int received() const { return g_stop_signal.load(); }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

// The console line: the loss averaged over this session's steps, and an ETA from this session's
// pace (a resumed run has not done its earlier steps in this session).
// Data-parallel, only the leader shows it (`shown` false: every call does nothing).
class Progress {
 public:
  Progress(int64_t first_step, bool shown) : shown_(shown), first_step_(first_step) {}
  void show(int epoch, int64_t step, int64_t total, double loss, double lr, double tok_s, bool log_line) {
    if (!shown_) return;
    loss_ema_ = step == first_step_ + 1 ? loss : 0.95 * loss_ema_ + 0.05 * loss;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int64_t done = step - first_step_;
    const double eta = done > 0 ? elapsed / done * (total - step) : 0;
    const std::string line = fmt::format("epoch {} step {}/{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {:.0f}s", epoch,
                                         step, total, loss_ema_, lr, tok_s, eta);
    if (tty_) {
      fmt::print(stderr, "\r{:<90}", line);
    } else if (log_line) {
      fmt::print(stderr, "{}\n", line);
    }
  }
  void done() {
    if (shown_ && tty_) fmt::print(stderr, "\n");
  }

 private:
  bool shown_;
  bool tty_ = ::isatty(2) != 0;
  int64_t first_step_;
  double loss_ema_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// What a run carries from checkpoint to checkpoint besides weights: evaluations, the best epoch,
// totals over all sessions, and the metrics of the latest evaluation (for the final metrics).
struct RunState {
  json history = json::array();
  json best = nullptr;
  json totals = {{"tokens", 0}, {"flops", 0.0}, {"wall_seconds", 0.0}};
  json last_eval = json::object();  // set name -> metrics of the latest evaluation
  double last_loss = 0;             // of the latest step

  json to_json(int64_t step, const json& run_config, const json& session_totals) const {
    return {{"version", kTrainerStateVersion},
            {"step", step},
            {"run_config", run_config},
            {"history", history},
            {"best", best},
            {"totals", session_totals},
            {"last_eval", last_eval},
            {"last_loss", last_loss}};
  }
};

class Training {
 public:
  Training(const TrainJob& job) : job_(job), loop_(job), files_(job), mlm_(job.model.head == Head::kMaskedLM) {}

  TrainResult run() {
    start();  // an error here (a checkpoint that does not load) leaves the run's files as they were
    try {
      return train();
    } catch (const std::exception& e) {
      try {
        files_.write_manifest(loop_.model(), fmt::format("failed: {}", e.what()));
      } catch (const std::exception&) {
        // The original error is the one to report.
      }
      throw;
    }
  }

 private:
  void start() {
    fs::create_directories(job_.out_dir);
    if (job_.start == StartMode::kResume) {
      const std::string ckpt = latest_checkpoint(job_.out_dir);
      TLM_CHECK(!ckpt.empty(), "{}: no checkpoint to resume from", job_.out_dir);
      const json st = read_trainer_state(ckpt, job_.run_config);
      loop_.load(ckpt, st.at("step"));
      state_.history = st.at("history");
      state_.best = st.at("best");
      state_.totals = st.at("totals");
      state_.last_eval = st.at("last_eval");
      state_.last_loss = st.at("last_loss");
      // Every rank continues from the leader's checkpoint (a shared file system may show another
      // rank an older listing): different steps would misalign every collective after this.
      int64_t leader_step = loop_.step();
      Comm::world().broadcast(&leader_step, 1);
      TLM_CHECK(leader_step == loop_.step(),
                "{}: rank {} found checkpoint step {} but the leader resumes at step {} (is the run folder on a "
                "file system every rank sees alike?)",
                job_.out_dir, Comm::world().rank(), loop_.step(), leader_step);
      files_.truncate_log_after(loop_.step());
      saved_step_ = loop_.step();
      if (leader_) fmt::print(stderr, "resuming {} at step {}\n", job_.out_dir, loop_.step());
    } else {
      loop_.init_weights();
      files_.start_log();
    }
    files_.write_manifest(loop_.model(), "running");
  }

  json session_totals() const {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
    return {{"tokens", state_.totals["tokens"].get<int64_t>() + tokens_done_},
            {"flops", state_.totals["flops"].get<double>() + flops_done_},
            {"wall_seconds", state_.totals["wall_seconds"].get<double>() + wall}};
  }

  void save_checkpoint() {
    files_.save_checkpoint(loop_, loop_.model(), state_.to_json(loop_.step(), job_.run_config, session_totals()));
    saved_step_ = loop_.step();
    Comm::world().barrier();  // no rank goes on (or exits) before the leader has written it
  }

  // Evaluates the current weights: validation MLM loss (pre-training), or accuracy on the
  // validation and test sets (fine-tuning; the test set at every epoch, or only at the last
  // evaluation with test_every_epoch off); logs the record and keeps it in the history.
  void evaluate(int epoch, bool last) {
    const int64_t step = loop_.step();
    json record = {{"epoch", epoch}, {"step", step}};
    BertModel& model = loop_.model();
    if (mlm_) {
      if (job_.valid.size() > 0) {
        const MlmValidation v = validate_mlm(model, job_.valid, job_.train, *job_.vocab, loop_.masking(),
                                             job_.options.batch, stream_key(job_.options.seed, Stream::kValidation));
        record["valid_mlm_loss"] = v.loss;
        record["unigram_loss"] = v.unigram_loss;
      }
    } else {
      const int labels = job_.model.num_labels();
      for (auto [set, name] : {std::pair{&job_.valid, "valid"}, std::pair{&job_.test, "test"}}) {
        if (set->size() == 0) continue;
        const bool is_test = set == &job_.test;
        if (is_test && !last && !job_.test_every_epoch) continue;
        std::vector<float> probs = predict_probs(model, *set, job_.options.batch);
        const EvalMetrics m = evaluate_probs(probs, set->labels, labels);
        if (is_test && last) final_test_probs_ = std::move(probs);  // saved per item at the end
        state_.last_eval[name] = m.to_json(job_.model.labels);
        record[std::string(name) + "_accuracy"] = m.accuracy;
        record[std::string(name) + "_macro_f1"] = m.macro_f1;
        record[std::string(name) + "_loss"] = m.loss;
      }
      // The best epoch is chosen on validation data when there is some, else (as asked for a
      // plain report) on the test set; the record says which.
      const std::string by = job_.valid.size() > 0 ? "valid_accuracy" : "test_accuracy";
      if (record.contains(by) && (state_.best.is_null() || record[by].get<double>() > state_.best[by].get<double>())) {
        state_.best = record;
        state_.best["chosen_by"] = by;
      }
    }
    state_.history.push_back(record);
    files_.log(record);
  }

  [[noreturn]] void diverged(const TrainLoop::StepResult& s) {
    std::string kept;
    if (saved_step_ == loop_.step()) {
      kept = fmt::format("the last finite state is checkpoint {}", checkpoint_name(loop_.step()));
    } else if (loop_.weights_finite()) {
      save_checkpoint();
      kept = fmt::format("the last finite state is saved as checkpoint {}", checkpoint_name(loop_.step()));
    } else {
      kept = "the weights are not finite either, so no checkpoint was written";
    }
    const std::string what =
        fmt::format("training diverged at step {}: loss {}, gradient norm {}; {} (try a lower --lr or --clip)",
                    loop_.step() + 1, s.loss, s.grad_norm, kept);
    // Every rank diverges at the same step (they hold the same numbers): the leader records it
    // before any rank's error ends the job.
    files_.write_manifest(loop_.model(), fmt::format("failed: {}", what));
    Comm::world().barrier();
    throw Error(what);
  }

  TrainResult train() {
    const int64_t last = loop_.last_step(), per_epoch = loop_.steps_per_epoch();
    StopSignals signals;
    Progress progress(loop_.step(), leader_);
    TrainResult result;
    while (loop_.step() < last) {
      const TrainLoop::StepResult s = loop_.run_step();
      if (!s.finite) diverged(s);
      const int64_t step = loop_.step();
      state_.last_loss = s.loss;
      tokens_done_ += s.tokens;
      flops_done_ += s.flops;
      const double tok_s = s.tokens / std::max(s.seconds, 1e-9);
      const bool log_now = step % job_.options.log_every == 0 || step == last;
      if (log_now) {
        json line = {{"step", step}, {"epoch", s.epoch},         {"loss", s.loss},
                     {"lr", s.lr},   {"grad_norm", s.grad_norm}, {"tokens_per_s", tok_s}};
        if (Comm::world().distributed()) line["comm_fraction"] = s.comm_seconds / std::max(s.seconds, 1e-9);
        files_.log(line);
      }
      progress.show(s.epoch, step, last, s.loss, s.lr, tok_s, log_now);
      // Every epoch ends with an evaluation, and so does the run (also mid-epoch, at max_steps),
      // before the checkpoint of that step, so a run resumed there has it already.
      if (step % per_epoch == 0 || step == last) evaluate(s.epoch, step == last);
      // A signal to any rank stops every rank at this same step (the largest signal number wins).
      const int stop_signal = static_cast<int>(Comm::world().max(signals.received()));
      const bool stop = stop_signal != 0;
      const bool periodic = job_.options.checkpoint_every > 0 && step % job_.options.checkpoint_every == 0;
      if (stop || periodic || step == last) save_checkpoint();
      if (stop) {
        progress.done();
        if (leader_) fmt::print(stderr, "stopped by signal {} at step {}; continue with --resume\n", stop_signal, step);
        files_.write_manifest(loop_.model(), "interrupted");
        result.interrupted = true;
        result.steps = step;
        return result;
      }
    }
    progress.done();
    const int64_t step = loop_.step();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
    json metrics = {{"steps", step},
                    {"epochs", job_.options.epochs},
                    {"final_train_loss", state_.last_loss},
                    {"history", state_.history},
                    {"wall_seconds_this_session", wall},
                    {"train_sequences", job_.train.size()},
                    {"tokens_this_session", tokens_done_},
                    {"totals", session_totals()}};
    if (!state_.history.empty()) metrics["final"] = state_.history.back();
    if (!state_.best.is_null()) metrics["best"] = state_.best;
    for (const auto& [name, m] : state_.last_eval.items()) metrics[name] = m;  // of the final weights
    files_.save_final(loop_.model(), metrics);
    if (!mlm_ && job_.test.size() > 0 && leader_) {  // per item, for paired tests and error analysis
      // The final evaluation's probabilities, unless this session resumed after it.
      if (!final_test_probs_) final_test_probs_ = predict_probs(loop_.model(), job_.test, job_.options.batch);
      save_predictions((fs::path(job_.out_dir) / "test_predictions.safetensors").string(),
                       predictions_of(job_.test, {{"model", std::move(*final_test_probs_)}}));
    }
    files_.write_manifest(loop_.model(), "finished");
    Comm::world().barrier();  // the run is whole on disk when any rank reports it done
    result.steps = step;
    result.final_loss = state_.last_loss;
    result.metrics = metrics;
    return result;
  }

  const TrainJob& job_;
  TrainLoop loop_;
  RunFiles files_;
  const bool mlm_;
  const bool leader_ = Comm::world().leader();  // prints progress and writes the run's files
  RunState state_;
  int64_t saved_step_ = -1;
  int64_t tokens_done_ = 0;
  double flops_done_ = 0;
  std::optional<std::vector<float>> final_test_probs_;  // [test items x labels], of the last evaluation
  std::chrono::steady_clock::time_point t_start_ = std::chrono::steady_clock::now();
};

}  // namespace

TrainResult train_model(const TrainJob& job) { return Training(job).run(); }

json read_trainer_state(const std::string& checkpoint_dir, const json& run_config) {
  const std::string path = (fs::path(checkpoint_dir) / "trainer_state.json").string();
  const json st = read_json_file(path);
  try {
    if (st.at("version").get<int>() != kTrainerStateVersion) {
      throw Error(fmt::format("{}: trainer state version {} is not supported (this tlm reads {})", path,
                              st.at("version").get<int>(), kTrainerStateVersion));
    }
    if (st.at("run_config") != run_config) throw Error(path + ": the checkpoint belongs to another configuration");
    const bool typed = st.at("step").is_number_integer() && st.at("step").get<int64_t>() >= 0 &&
                       st.at("history").is_array() && (st.at("best").is_null() || st.at("best").is_object()) &&
                       st.at("totals").at("tokens").is_number_integer() && st.at("totals").at("flops").is_number() &&
                       st.at("totals").at("wall_seconds").is_number() && st.at("last_eval").is_object() &&
                       st.at("last_loss").is_number();
    if (!typed) throw Error(path + ": a field has the wrong type (the file was not written by this tlm)");
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not what tlm wrote: {}", path, e.what()));
  }
  return st;
}

}  // namespace tlm
