#include "tlm/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>

#include "kernels/kernels.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/file_io.h"
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

// Random streams, each a pure function of (seed, step or epoch): resuming needs only the step.
enum Stream : uint64_t { kInit = 1, kShuffle = 2, kMask = 3, kDropout = 4, kHeadInit = 5, kValidation = 6 };

ModelLimits limits_for_set(const SequenceSet& set, int batch, bool mlm, double mask_prob) {
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < set.size(); ++i) lengths.push_back(set.offsets[i + 1] - set.offsets[i]);
  std::sort(lengths.rbegin(), lengths.rend());
  int64_t tokens = 0;
  for (int i = 0; i < batch && i < static_cast<int>(lengths.size()); ++i) tokens += lengths[i];
  ModelLimits lim;
  lim.max_tokens = static_cast<int>(std::max<int64_t>(tokens, 1));
  lim.max_seqs = batch;
  lim.max_seq_len = static_cast<int>(lengths.empty() ? 1 : lengths[0]);
  const double mean = mask_prob * tokens, sd = std::sqrt(tokens * mask_prob * (1 - mask_prob));
  lim.max_targets = mlm ? static_cast<int>(std::min<double>(tokens, std::ceil(mean + 6 * sd + 8))) : 1;
  return lim;
}

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:09d}", step); }

// The newest complete checkpoint folder of a run, or "" if none.
std::string latest_checkpoint(const std::string& out_dir) {
  const fs::path dir = fs::path(out_dir) / "checkpoints";
  if (!fs::exists(dir)) return {};
  std::string best;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || name.find('.') != std::string::npos) continue;
    if (!fs::exists(e.path() / "trainer_state.json")) continue;
    if (name > best) best = name;
  }
  return best.empty() ? best : (dir / best).string();
}

struct Progress {
  bool tty = ::isatty(2) != 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  void show(int epoch, int64_t step, int64_t total, double loss, double lr, double tok_s, bool log_line) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = step > 0 ? elapsed / step * (total - step) : 0;
    const std::string line = fmt::format("epoch {} step {}/{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {:.0f}s", epoch,
                                         step, total, loss, lr, tok_s, eta);
    if (tty) {
      fmt::print(stderr, "\r{:<90}", line);
    } else if (log_line) {
      fmt::print(stderr, "{}\n", line);
    }
  }
  void done() {
    if (tty) fmt::print(stderr, "\n");
  }
};

}  // namespace

json EvalMetrics::to_json(const std::vector<std::string>& labels) const {
  return {{"accuracy", accuracy}, {"macro_f1", macro_f1}, {"loss", loss}, {"labels", labels}, {"confusion", confusion}};
}

EvalMetrics evaluate_probs(const std::vector<float>& probs, const std::vector<int32_t>& labels, int num_labels) {
  EvalMetrics m;
  m.confusion.assign(num_labels, std::vector<int64_t>(num_labels, 0));
  const int64_t n = static_cast<int64_t>(labels.size());
  TLM_CHECK(static_cast<int64_t>(probs.size()) == n * num_labels, "probabilities do not match the labels");
  int64_t correct = 0;
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* p = probs.data() + i * num_labels;
    const int pred = static_cast<int>(std::max_element(p, p + num_labels) - p);
    ++m.confusion[labels[i]][pred];
    correct += pred == labels[i];
    loss -= std::log(std::max(1e-30, static_cast<double>(p[labels[i]])));
  }
  m.accuracy = n ? static_cast<double>(correct) / n : 0;
  m.loss = n ? loss / n : 0;
  double f1_sum = 0;
  for (int c = 0; c < num_labels; ++c) {
    int64_t tp = m.confusion[c][c], fp = 0, fn = 0;
    for (int k = 0; k < num_labels; ++k) {
      if (k == c) continue;
      fp += m.confusion[k][c];
      fn += m.confusion[c][k];
    }
    f1_sum += tp == 0 ? 0.0 : 2.0 * tp / (2.0 * tp + fp + fn);
  }
  m.macro_f1 = num_labels ? f1_sum / num_labels : 0;
  return m;
}

std::vector<float> predict_probs(BertModel& model, const SequenceSet& set, int batch) {
  const int labels = model.config().num_labels();
  std::vector<float> probs(static_cast<size_t>(set.size()) * labels);
  Batch b;
  std::vector<int64_t> which;
  for (int64_t start = 0; start < set.size(); start += batch) {
    which.clear();
    for (int64_t i = start; i < std::min(set.size(), start + batch); ++i) which.push_back(i);
    make_batch(set, which, b);
    model.forward(b, false, 0);
    kernels::softmax_rows(model.logits(), probs.data() + start * labels, static_cast<int>(which.size()), labels);
  }
  return probs;
}

MlmValidation validate_mlm(BertModel& model, const SequenceSet& valid, const SequenceSet& train, const Vocab& vocab,
                           const MaskingOptions& masking, int batch, uint64_t seed) {
  // Unigram frequencies of the training tokens, add-one smoothed over the vocabulary.
  std::vector<double> freq(vocab.size(), 1.0);
  double total = vocab.size();
  for (int32_t id : train.ids) {
    if (!vocab.is_special(id)) {
      freq[id] += 1;
      total += 1;
    }
  }
  MlmValidation v;
  double loss = 0, unigram = 0;
  Rng rng(mix_key(seed, kValidation));
  Batch b;
  std::vector<int64_t> which;
  for (int64_t start = 0; start < valid.size(); start += batch) {
    which.clear();
    for (int64_t i = start; i < std::min(valid.size(), start + batch); ++i) which.push_back(i);
    make_mlm_batch(valid, which, vocab, masking, rng, b);
    loss += model.forward(b, false, 0).loss_sum;
    for (int32_t label : b.mlm_labels) unigram -= std::log(freq[label] / total);
    v.targets += static_cast<int64_t>(b.mlm_labels.size());
  }
  v.loss = v.targets ? loss / v.targets : 0;
  v.unigram_loss = v.targets ? unigram / v.targets : 0;
  return v;
}

std::unique_ptr<BertModel> load_model_for(const std::string& dir, const SequenceSet& set, int batch) {
  const BertConfig cfg = load_config(dir);
  auto model = std::make_unique<BertModel>(cfg, limits_for_set(set, batch, false, 0));
  load_model_weights(*model, dir, LoadMode::kExact);
  return model;
}

TrainResult train_model(const TrainJob& job) {
  const TrainOptions& o = job.options;
  const bool mlm = job.model.head == Head::kMaskedLM;
  TLM_CHECK(job.train.size() > 0, "the training set is empty");
  TLM_CHECK(o.batch >= 1 && o.epochs >= 1, "batch and epochs must be positive");
  fs::create_directories(job.out_dir);
  const auto t_start = std::chrono::steady_clock::now();

  const int64_t steps_per_epoch = (job.train.size() + o.batch - 1) / o.batch;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t last_step = o.max_steps > 0 ? std::min(o.max_steps, total_steps) : total_steps;
  const int64_t warmup = o.warmup < 1.0 ? std::llround(o.warmup * total_steps) : std::llround(o.warmup);

  ModelLimits lim = limits_for_set(job.train, o.batch, mlm, o.masking.mask_prob);
  for (const SequenceSet* eval_set : {&job.test, &job.valid}) {
    if (eval_set->size() == 0) continue;
    const ModelLimits t = limits_for_set(*eval_set, o.batch, false, 0);
    lim.max_tokens = std::max(lim.max_tokens, t.max_tokens);
    lim.max_seq_len = std::max(lim.max_seq_len, t.max_seq_len);
  }
  MaskingOptions masking = o.masking;
  masking.max_targets = lim.max_targets;
  BertModel model(job.model, lim);
  AdamW adam(model.table(), AdamWOptions{.lr = o.lr, .weight_decay = o.weight_decay, .no_decay = o.no_decay});

  RunFiles files(job.out_dir);
  int64_t step = 0;
  json history = json::array();
  json best = nullptr;
  // Work over all sessions of the run (a resumed run adds to its checkpoint's): what an
  // experiment records per run.
  json totals = {{"tokens", 0}, {"flops", 0.0}, {"wall_seconds", 0.0}};
  if (job.resume) {
    const std::string ckpt = latest_checkpoint(job.out_dir);
    TLM_CHECK(!ckpt.empty(), "{}: no checkpoint to resume from", job.out_dir);
    const json state = json::parse(read_file(ckpt + "/trainer_state.json"));
    if (state.value("version", 0) != kTrainerStateVersion) {
      throw Error(fmt::format("{}: trainer state version {} is not supported", ckpt, state.value("version", 0)));
    }
    if (state.at("run_config") != job.run_config) {
      throw Error(
          fmt::format("{}: --resume of a run made with another configuration (run `tlm {} --dump-config` "
                      "and compare with {}/config.json)",
                      job.out_dir, mlm ? "pretrain" : "finetune", job.out_dir));
    }
    load_model_weights(model, ckpt, LoadMode::kExact);
    load_optimizer(ckpt, adam, model.table());
    step = state.at("step");
    history = state.value("history", json::array());
    best = state.value("best", json(nullptr));
    totals = state.value("totals", totals);
    files.truncate_log_after(step);
    fmt::print(stderr, "resuming {} at step {}\n", job.out_dir, step);
  } else {
    TLM_CHECK(latest_checkpoint(job.out_dir).empty(),
              "{} already holds a run; continue it with --resume {} or choose another --out", job.out_dir, job.out_dir);
    model.init_weights(mix_key(o.seed, kInit));
    if (!job.init_dir.empty()) {
      const BertConfig pre = load_config(job.init_dir);
      TLM_CHECK(pre.vocab_size == job.model.vocab_size && pre.hidden_size == job.model.hidden_size &&
                    pre.num_hidden_layers == job.model.num_hidden_layers &&
                    pre.num_attention_heads == job.model.num_attention_heads &&
                    pre.intermediate_size == job.model.intermediate_size,
                "{}: the pre-trained architecture differs from the fine-tuning one", job.init_dir);
      load_model_weights(model, job.init_dir, LoadMode::kEncoderOnly);  // pooler and classifier stay fresh
    }
    files.start_log();
  }
  files.write_manifest(job, model, "running");

  StopSignals signals;
  Progress progress;
  Batch batch;
  double loss_ema = 0, last_loss = 0;
  int64_t tokens_done = 0;
  double flops_done = 0;
  auto session_totals = [&] {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    return json{{"tokens", totals["tokens"].get<int64_t>() + tokens_done},
                {"flops", totals["flops"].get<double>() + flops_done},
                {"wall_seconds", totals["wall_seconds"].get<double>() + wall}};
  };
  auto save_checkpoint = [&](int64_t at_step) {
    json state = {{"version", kTrainerStateVersion},
                  {"step", at_step},
                  {"run_config", job.run_config},
                  {"history", history},
                  {"best", best},
                  {"totals", session_totals()}};
    files.save_checkpoint(checkpoint_name(at_step), model, adam, state, job.run_config, o.keep_checkpoints);
  };
  std::map<std::string, EvalMetrics> last_eval;  // of the latest evaluation, per set
  auto evaluate_epoch = [&](int epoch) {
    json record = {{"epoch", epoch}, {"step", step}};
    if (mlm) {
      if (job.test.size() > 0) {
        const MlmValidation v = validate_mlm(model, job.test, job.train, *job.vocab, masking, o.batch, o.seed);
        record["valid_mlm_loss"] = v.loss;
        record["unigram_loss"] = v.unigram_loss;
      }
    } else {
      const int labels = job.model.num_labels();
      for (auto [set, name] : {std::pair{&job.valid, "valid"}, std::pair{&job.test, "test"}}) {
        if (set->size() == 0) continue;
        const EvalMetrics& m = last_eval[name] =
            evaluate_probs(predict_probs(model, *set, o.batch), set->labels, labels);
        record[std::string(name) + "_accuracy"] = m.accuracy;
        record[std::string(name) + "_macro_f1"] = m.macro_f1;
        record[std::string(name) + "_loss"] = m.loss;
      }
      // The best epoch is chosen on validation data when there is some, else (as asked for a
      // plain report) on the test set; the record says which.
      const std::string by = job.valid.size() > 0 ? "valid_accuracy" : "test_accuracy";
      if (record.contains(by) && (best.is_null() || record[by].get<double>() > best[by].get<double>())) {
        best = record;
        best["chosen_by"] = by;
      }
    }
    history.push_back(record);
    files.log(record);
  };

  TrainResult result;
  while (step < last_step) {
    const int epoch = static_cast<int>(step / steps_per_epoch);
    Rng shuffle(mix_key(o.seed, kShuffle, static_cast<uint64_t>(epoch)));
    const std::vector<int64_t> order = shuffled_order(job.train.size(), shuffle);
    const int64_t in_epoch = step % steps_per_epoch;
    const int64_t begin = in_epoch * o.batch, end = std::min<int64_t>(job.train.size(), begin + o.batch);
    const std::span<const int64_t> which(order.data() + begin, static_cast<size_t>(end - begin));
    const auto t0 = std::chrono::steady_clock::now();
    if (mlm) {
      Rng mask_rng(mix_key(o.seed, kMask, static_cast<uint64_t>(step)));
      make_mlm_batch(job.train, which, *job.vocab, masking, mask_rng, batch);
    } else {
      make_classification_batch(job.train, which, batch);
    }
    model.zero_grad();
    const ForwardResult f = model.forward(batch, true, mix_key(o.seed, kDropout, static_cast<uint64_t>(step)));
    model.backward(static_cast<float>(1.0 / f.count));
    const double grad_norm = clip_grad_norm(model.grads(), model.num_params(), o.clip);
    const double lr = o.lr * linear_schedule(step, warmup, total_steps);
    adam.step(model.params(), model.grads(), lr);
    ++step;
    last_loss = f.mean_loss();
    loss_ema = step == 1 ? last_loss : 0.95 * loss_ema + 0.05 * last_loss;
    tokens_done += batch.num_tokens();
    flops_done += model.train_flops(batch);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tok_s = batch.num_tokens() / std::max(dt, 1e-9);
    const bool log_now = step % o.log_every == 0 || step == last_step;
    if (log_now) {
      files.log({{"step", step},
                 {"epoch", epoch},
                 {"loss", last_loss},
                 {"lr", lr},
                 {"grad_norm", grad_norm},
                 {"tokens_per_s", tok_s}});
    }
    progress.show(epoch, step, last_step, loss_ema, lr, tok_s, log_now);
    if (step % steps_per_epoch == 0) evaluate_epoch(epoch);
    const bool stop = signals.received() != 0;
    if (stop || (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) || step == last_step) save_checkpoint(step);
    if (stop) {
      progress.done();
      fmt::print(stderr, "stopped by signal {} at step {}; continue with --resume\n", signals.received(), step);
      result.interrupted = true;
      result.steps = step;
      files.write_manifest(job, model, "interrupted");
      return result;
    }
  }
  progress.done();
  // Evaluate the final weights unless the last epoch's evaluation already did (a resumed run that
  // had already finished has not evaluated in this session).
  const bool evaluated =
      step % steps_per_epoch == 0 && (mlm || !last_eval.empty() || (job.test.size() == 0 && job.valid.size() == 0));
  if (!evaluated) evaluate_epoch(static_cast<int>((step - 1) / steps_per_epoch));

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  json metrics = {{"steps", step},
                  {"epochs", o.epochs},
                  {"final_train_loss", last_loss},
                  {"history", history},
                  {"wall_seconds_this_session", wall},
                  {"train_sequences", job.train.size()},
                  {"tokens_this_session", tokens_done},
                  {"totals", session_totals()}};
  if (!history.empty()) metrics["final"] = history.back();
  if (!best.is_null()) metrics["best"] = best;
  // The last evaluation ran on the final weights (every run ends with one), so its metrics are
  // the final ones.
  for (const auto& [name, m] : last_eval) metrics[name] = m.to_json(job.model.labels);
  files.save_final(model, job.run_config, metrics);
  files.write_manifest(job, model, "finished");
  result.steps = step;
  result.final_loss = last_loss;
  result.metrics = metrics;
  return result;
}

}  // namespace tlm
