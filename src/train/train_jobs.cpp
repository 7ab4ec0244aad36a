#include "tlm/train_jobs.h"

#include <filesystem>
#include <memory>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/checkpoint.h"
#include "tlm/comm.h"
#include "tlm/file_io.h"
#include "tlm/folder_lock.h"
#include "tlm/hash.h"
#include "tlm/model_io.h"
#include "tlm/run_data.h"
#include "tlm/run_folder.h"
#include "tlm/sequences_cache.h"
#include "tlm/train_loop.h"

namespace tlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

enum class ResumeMode { kNone, kExplicit, kAuto };

// A run folder opened for training: locked, its state checked against the job.
struct OpenedRun {
  std::unique_ptr<FolderLock> lock;
  StartMode start = StartMode::kFresh;
  bool finished = false;
  bool created = false;  // the folder did not exist: a job refused before acting removes it again
};

// What identifies a run's work, compared when it is continued.
struct RunIdentity {
  json run_config;    // the schema's identity of the resolved configuration
  std::string vocab;  // hash of the vocabulary
  json data_hashes;   // input file -> content hash
};

// What differs between two configurations, key by key, for a message.
std::string config_differences(const json& run, const json& now) {
  std::string out;
  for (const auto& [k, v] : now.items()) {
    const json was = run.contains(k) ? run[k] : json(nullptr);
    if (was != v) out += fmt::format("\n  {}: {} in the run, {} now", k, was.dump(), v.dump());
  }
  for (const auto& [k, v] : run.items()) {
    if (!now.contains(k)) out += fmt::format("\n  {}: {} in the run, not set now", k, v.dump());
  }
  return out;
}

// Checks a run's manifest against the job that wants to continue it.
void check_same_run(const std::string& out, const json& manifest, const RunIdentity& id, const char* kind) {
  const std::string path = (fs::path(out) / "manifest.json").string();
  try {
    if (!manifest.contains("run_config")) {
      throw Error(
          fmt::format("{}: no run configuration (made by an older tlm?); start the run in another folder", path));
    }
    if (manifest["run_config"] != id.run_config) {
      throw Error(
          fmt::format("{}: --resume of a run made with another configuration (compare `tlm {} "
                      "--dump-config` with {}):{}",
                      out, kind, path, config_differences(manifest["run_config"], id.run_config)));
    }
    if (manifest.at("vocab_hash").get<std::string>() != id.vocab) {
      throw Error(fmt::format("{}: the run was trained with another vocabulary (hash {}, given {})", out,
                              manifest["vocab_hash"].get<std::string>(), id.vocab));
    }
    for (const auto& [file, hash] : id.data_hashes.items()) {
      const json& was = manifest.at("data");
      if (was.contains(file) && was[file] != hash) {
        throw Error(
            fmt::format("{}: {} has changed since the run started (hash {}, now {}); a run continues on "
                        "the data it began with",
                        out, file, was[file].get<std::string>(), hash.get<std::string>()));
      }
    }
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not what tlm wrote: {}", path, e.what()));
  }
}

OpenedRun open_run_folder(const std::string& out, ResumeMode mode, const RunIdentity& id, const char* kind) {
  if (mode == ResumeMode::kExplicit && !(fs::is_directory(out) && holds_run(out))) {
    throw Error(fmt::format("--resume {}: there is no run to continue there (no manifest, checkpoint or model)", out));
  }
  OpenedRun opened;
  opened.created = !fs::exists(out);
  fs::create_directories(out);
  opened.lock = std::make_unique<FolderLock>(out, "run folder");
  if (!holds_run(out)) {
    TLM_CHECK(mode != ResumeMode::kExplicit, "--resume {}: there is no run to continue there", out);
    return opened;
  }
  const json manifest = read_manifest(out);
  const std::string status = manifest.is_object() ? manifest.value("status", std::string()) : std::string();
  const std::string checkpoint = latest_checkpoint(out);
  if (status.rfind("failed", 0) == 0 && checkpoint.empty() && !fs::exists(fs::path(out) / "model.safetensors")) {
    fmt::print(stderr, "{}: the run {} before its first checkpoint; starting it anew\n", out, status);
    return opened;
  }
  if (mode == ResumeMode::kNone) {
    throw Error(fmt::format("{} already holds a run; continue it with --resume {} or choose another --out", out, out));
  }
  if (manifest.is_null())
    throw Error(
        fmt::format("{}: a run without manifest.json cannot be checked; start it "
                    "in another folder",
                    out));
  check_same_run(out, manifest, id, kind);
  const bool complete = fs::exists(fs::path(out) / "metrics.json") && fs::exists(fs::path(out) / "model.safetensors");
  if (status == "finished" && complete) {
    opened.finished = true;
  } else if (!checkpoint.empty()) {
    read_trainer_state(checkpoint, id.run_config);  // readable, of this version, for this run
    opened.start = StartMode::kResume;
  } else {
    fmt::print(stderr, "{}: the run stopped before its first checkpoint; starting it again\n", out);
  }
  return opened;
}

// Data-parallel: the leader (rank 0) opens and locks the folder and decides how the run starts;
// the other ranks take its decision. An error on the leader ends every rank (main aborts them).
OpenedRun open_run_on_ranks(const std::string& out, ResumeMode mode, const RunIdentity& id, const char* kind) {
  const Comm& comm = Comm::world();
  OpenedRun opened;
  if (comm.leader()) opened = open_run_folder(out, mode, id, kind);
  int64_t decided[2] = {opened.start == StartMode::kResume, opened.finished};
  comm.broadcast(decided, 2);
  opened.start = decided[0] != 0 ? StartMode::kResume : StartMode::kFresh;
  opened.finished = decided[1] != 0;
  return opened;
}

// Runs `prepare` (the data checks that need the locked folder); if it refuses the job, a folder
// this job made is removed again, so a refused job leaves no trace. Data-parallel, the leader
// prepares first (filling the token cache) and the other ranks then read what it wrote.
template <typename Prepare>
void prepare_or_clean_up(const std::string& out, OpenedRun& opened, Prepare prepare) {
  const Comm& comm = Comm::world();
  if (!comm.leader()) {
    comm.barrier();
    prepare();
    return;
  }
  try {
    prepare();
  } catch (...) {
    if (opened.created) {
      std::error_code ignored;
      fs::remove_all(out, ignored);
    }
    throw;
  }
  comm.barrier();
}

ResumeMode resume_mode(json& c) {
  const std::string resume = c.at("resume");
  if (!resume.empty()) {
    const std::string out = c.at("out");
    TLM_CHECK(out.empty() || fs::path(out).lexically_normal() == fs::path(resume).lexically_normal(),
              "--resume {} and --out {} name different runs", resume, out);
    c["out"] = resume;
    return ResumeMode::kExplicit;
  }
  return c.at("auto_resume").get<bool>() ? ResumeMode::kAuto : ResumeMode::kNone;
}

// The configuration that identifies a run's work (compared when it is continued).
json run_identity(const std::string& kind, const json& c) { return job_schema(kind).identity(c); }

std::string cache_dir(const json& c) {
  const std::string d = c.at("cache_dir");
  return d.empty() ? (fs::path(c.at("out").get<std::string>()) / "cache").string() : d;
}

void report_skips(const ReadStats& s, const std::string& what) {
  if (s.skipped == 0 || !Comm::world().leader()) return;  // data-parallel: the leader reports it
  fmt::print(stderr, "{}: skipped {} bad rows:", what, s.skipped);
  for (const auto& [reason, n] : s.skip_reasons) fmt::print(stderr, " {} {};", reason, n);
  fmt::print(stderr, "\n");
}

BertConfig model_config(const json& c, const Vocab& vocab) {
  BertConfig m;
  m.vocab_size = vocab.size();
  m.num_hidden_layers = c.at("layers");
  m.hidden_size = c.at("hidden");
  m.num_attention_heads = c.at("heads");
  m.intermediate_size = c.at("ffn").get<int>() > 0 ? c.at("ffn").get<int>() : 4 * m.hidden_size;
  m.max_position_embeddings = std::max(512, c.at("max_len").get<int>());
  m.hidden_dropout_prob = m.attention_probs_dropout_prob = c.at("dropout");
  m.conv.layers = c.at("conv_layers");
  std::tie(m.conv.kernel_seq, m.conv.kernel_hidden) = parse_conv_kernel(c.at("conv_kernel"));
  m.conv.channels = c.at("conv_channels");
  m.conv.pad_to = c.at("pad_to");
  m.pad_token_id = vocab.pad_id();
  m.unk_token_id = vocab.unk_id();
  m.cls_token_id = vocab.cls_id();
  m.sep_token_id = vocab.sep_id();
  m.mask_token_id = vocab.mask_id();
  m.validate();
  return m;
}

TrainOptions train_options(const json& c) {
  TrainOptions o;
  o.epochs = c.at("epochs");
  o.batch = c.at("batch");
  o.optimizer.lr = c.at("lr");
  o.optimizer.weight_decay = c.at("weight_decay");
  o.warmup = c.at("warmup");
  o.per_epoch_schedule = c.at("schedule") == "per-epoch";
  o.clip = c.at("clip");
  o.max_steps = c.at("max_steps");
  o.seed = c.at("seed");
  o.checkpoint_every = c.at("checkpoint_every");
  o.keep_checkpoints = c.at("keep_checkpoints");
  o.log_every = c.at("log_every");
  o.overlap_grads = c.at("overlap_grads");
  o.bucket_mb = c.at("bucket_mb");
  const std::string prefetch = c.at("prefetch");
  o.prefetch = prefetch == "on" ||
               (prefetch == "auto" && parse_device(c.at("device").get<std::string>()).kind != DeviceKind::kCpu);
  return o;
}

// A finished run's own metrics, for the caller's summary.
JobRun finished_run(const std::string& out) {
  JobRun r;
  r.out = out;
  r.already_finished = true;
  r.result.metrics = read_json_file((fs::path(out) / "metrics.json").string());
  r.result.steps = r.result.metrics.value("steps", int64_t{0});
  if (Comm::world().leader()) fmt::print(stderr, "{}: the run has finished; nothing to do\n", out);
  return r;
}

// Act: stale partial checkpoints go, the run's tokenizer is written (a new run), then training.
JobRun train_in_folder(TrainJob& job, const OpenedRun& opened, const TokenizerOptions& tok) {
  job.start = opened.start;
  const Comm& comm = Comm::world();
  if (comm.leader()) {
    if (const int n = remove_partial_checkpoints(job.out_dir); n > 0) {
      fmt::print(stderr, "{}: removed {} partial checkpoint folder(s) a kill left behind\n", job.out_dir, n);
    }
    if (job.start == StartMode::kFresh) save_run_tokenizer(job.out_dir, *job.vocab, tok);
  }
  comm.barrier();
  JobRun r;
  r.out = job.out_dir;
  r.result = train_model(job);
  return r;
}

// Pre-training data: the corpus tokenized (through the cache), split into training and
// validation sequences.
void prepare_pretraining(const json& c, const std::vector<std::string>& corpora, const Vocab& vocab,
                         const TokenizerOptions& tok_options, Format format, TrainJob& job) {
  const Tokenizer tok(vocab, tok_options);
  CorpusSequencesOptions co;
  co.reader.format = format;
  co.reader.text_field = c.at("text_field");
  co.reader.on_bad_row = parse_on_bad_row(c.at("on_bad_row"));
  co.max_len = c.at("max_len");
  co.mode = c.at("seq_mode") == "first" ? SequenceMode::kFirst : SequenceMode::kChunk;
  co.cache_dir = cache_dir(c);
  const CorpusSequences all = corpus_sequences(corpora, tok, co);
  report_skips(all.stats, "corpus");
  TLM_CHECK(all.set.size() > 1, "the corpus gave {} sequences: nothing to pre-train on", all.set.size());
  PretrainSplit split = split_pretraining(all.set, c.at("sequences"), c.at("valid_sequences"), c.at("seed"));
  job.train = std::move(split.train);
  job.valid = std::move(split.valid);
}

// Fine-tuning data: the labeled files tokenized (through the cache), the run's samples drawn.
void prepare_finetuning(const json& c, const Vocab& vocab, const TokenizerOptions& tok_options, Format format,
                        TrainJob& job) {
  const std::string train_path = c.at("train"), test_path = c.at("test");
  ReaderOptions ro;
  ro.format = format;
  ro.classes_path = c.at("classes");
  ro.text_field = c.at("text_field");
  ro.on_bad_row = parse_on_bad_row(c.at("on_bad_row"));
  const Tokenizer tok(vocab, tok_options);
  const int max_len = c.at("max_len");
  const CorpusSequences train_all = labeled_sequences(train_path, tok, ro, max_len, cache_dir(c));
  report_skips(train_all.stats, train_path);
  CorpusSequences test_all;
  if (!test_path.empty()) {
    test_all = labeled_sequences(test_path, tok, ro, max_len, cache_dir(c));
    report_skips(test_all.stats, test_path);
    TLM_CHECK(test_all.set.label_names == train_all.set.label_names, "{} and {} have different label sets", train_path,
              test_path);
  }
  LabeledSample sample =
      draw_labeled_sample(train_all.set, test_path.empty() ? nullptr : &test_all.set, labeled_sample_options(c));
  if (Comm::world().leader()) {
    for (const auto& note : sample.capped) fmt::print(stderr, "capped: {}\n", note);
  }
  TLM_CHECK(sample.train.size() > 0, "the training set is empty after sampling");
  job.train = std::move(sample.train);
  job.valid = std::move(sample.valid);
  job.test = std::move(sample.test);
  job.notes = {{"capped", sample.capped}};
}

// The job's precision, `auto` resolved. Under mpirun every rank resolves it on its own machine:
// the ranks must agree (else one job would train in two precisions while its manifest names rank
// 0's).
Precision agreed_precision(json& c) {
  const Precision p = resolve_precision_key(c);
  const Comm& comm = Comm::world();
  if (comm.distributed()) {
    const auto v = static_cast<int64_t>(p);
    TLM_CHECK(comm.max(v) == -comm.max(-v),
              "the ranks resolved --precision auto differently (rank {} to {}: their CPUs differ); give --precision "
              "fp32 or bf16",
              comm.rank(), precision_name(p));
  }
  return p;
}

}  // namespace

JobRun run_pretrain_job(const ResolvedConfig& rc, const std::vector<std::string>& command_line) {
  json c = rc.config;
  const ResumeMode mode = resume_mode(c);
  const std::string out = c.at("out");
  const auto corpora = c.at("corpus").get<std::vector<std::string>>();
  for (const auto& p : corpora) TLM_CHECK(fs::is_regular_file(p), "{}: no such corpus file", p);
  const Vocab vocab = Vocab::load(c.at("vocab"));
  const Format format = parse_format(c.at("format"));
  const TokenizerOptions tok_options = run_tokenizer_options(c.at("cased"), c.at("max_len"), format);
  TrainJob job;
  job.backend = make_backend(parse_device(c.at("device").get<std::string>()), agreed_precision(c));
  job.model = model_config(c, vocab);
  job.run_config = run_identity("pretrain", c);
  for (const auto& p : corpora) job.data_hashes[p] = hex16(hash_file(p));
  check_backend(job.model, *job.backend);
  check_data_parallel(job.model, *job.backend);
  OpenedRun opened = open_run_on_ranks(out, mode, {job.run_config, hex16(vocab.hash()), job.data_hashes}, "pretrain");
  if (opened.finished) return finished_run(out);
  prepare_or_clean_up(out, opened, [&] { prepare_pretraining(c, corpora, vocab, tok_options, format, job); });
  if (Comm::world().leader())
    fmt::print(stderr, "pretrain: {} sequences ({} tokens), {} for validation; model {} x {}\n", job.train.size(),
               job.train.num_tokens(), job.valid.size(), job.model.num_hidden_layers, job.model.hidden_size);
  job.vocab = &vocab;
  job.options = train_options(c);
  job.options.masking.mask_prob = c.at("mask_prob");
  job.out_dir = out;
  job.command_line = command_line;
  return train_in_folder(job, opened, tok_options);
}

JobRun run_finetune_job(const ResolvedConfig& rc, const std::vector<std::string>& command_line) {
  json c = rc.config;
  const ResumeMode mode = resume_mode(c);
  const std::string out = c.at("out"), init = c.at("init");
  const std::string train_path = c.at("train"), test_path = c.at("test"), classes = c.at("classes");
  TLM_CHECK(fs::is_regular_file(train_path), "{}: no such training file", train_path);
  TLM_CHECK(test_path.empty() || fs::is_regular_file(test_path), "{}: no such test file", test_path);
  TLM_CHECK(classes.empty() || fs::is_regular_file(classes), "{}: no such classes file", classes);
  const Format format = parse_format(c.at("format"));

  // The vocabulary: the --init run's (checked against its manifest), or --vocab (which with
  // --init must be that same vocabulary); architecture and case come from the --init run, and a
  // flag that contradicts it is an error.
  std::unique_ptr<Vocab> vocab;
  BertConfig model;
  if (!init.empty()) {
    TLM_CHECK(fs::is_directory(init), "--init {}: no such run folder", init);
    RunTokenizer pre_tok = load_run_tokenizer(init);
    if (!c.at("vocab").get<std::string>().empty()) {
      const Vocab given = Vocab::load(c.at("vocab"));
      TLM_CHECK(given.hash() == pre_tok.vocab.hash(),
                "--vocab {} is not the vocabulary of the --init run {} (hash {} vs {})",
                c.at("vocab").get<std::string>(), init, hex16(given.hash()), hex16(pre_tok.vocab.hash()));
    }
    vocab = std::make_unique<Vocab>(std::move(pre_tok.vocab));
    model = load_config(init);
    const int pre_ffn = model.intermediate_size == 4 * model.hidden_size ? 0 : model.intermediate_size;
    // A run without a front-end holds its defaults, the schema's too: its identity is unchanged.
    const ConvConfig conv = model.conv.enabled() ? model.conv : ConvConfig{};
    const json pre_arch = {
        {"layers", model.num_hidden_layers},  {"hidden", model.hidden_size},
        {"heads", model.num_attention_heads}, {"ffn", pre_ffn},
        {"conv_layers", conv.layers},         {"conv_kernel", conv_kernel_text(conv.kernel_seq, conv.kernel_hidden)},
        {"conv_channels", conv.channels},     {"pad_to", conv.pad_to}};
    for (const auto& key : architecture_keys()) {
      // (conv_kernel is in its one spelling on both sides: conv_kernel_text, the schema's canonical)
      const bool same =
          c.at(key) == pre_arch.at(key) || (key == "ffn" && c.at(key).get<int>() == model.intermediate_size);
      if (rc.was_given(key) && !same) {
        throw Error(fmt::format("{} {} differs from the --init run {} ({}); leave it out to use the run's",
                                flag_of(key), c.at(key).dump(), init, pre_arch.at(key).dump()));
      }
      c[key] = pre_arch.at(key);
    }
    const bool pre_cased = !pre_tok.options.lowercase;
    if (rc.was_given("cased") && c.at("cased").get<bool>() != pre_cased) {
      throw Error(
          fmt::format("--cased {}: the --init run {} is {}; a model is fine-tuned with the case handling it "
                      "was pre-trained with",
                      c.at("cased").dump(), init, describe_case(pre_tok.options)));
    }
    c["cased"] = pre_cased;
  } else {
    vocab = std::make_unique<Vocab>(Vocab::load(c.at("vocab")));
    model = model_config(c, *vocab);
  }
  const int max_len = c.at("max_len");
  if (!init.empty()) {
    // The --init encoder must load (shapes, finite values) before anything is written.
    TLM_CHECK(max_len <= model.max_position_embeddings, "--max-len {} exceeds the {} positions of the --init run {}",
              max_len, model.max_position_embeddings, init);
    TLM_CHECK(model.conv.pad_to == 0 || max_len <= model.conv.pad_to,
              "--max-len {} is longer than the --init run {}'s padded length (--pad-to {}): sequences must fit it",
              max_len, init, model.conv.pad_to);
    BertModel probe(model, ModelLimits{1, 1, 1, 1});
    load_model_weights(probe, init, {LoadMode::kEncoderOnly, c.at("allow_nonfinite").get<bool>()});
  }
  const TokenizerOptions tok_options = run_tokenizer_options(c.at("cased"), max_len, format);
  for (const auto& t : tok_options.added_tokens) {
    TLM_CHECK(vocab->find(t) >= 0, "the vocabulary has no {} token, which {} data needs", t, format_name(format));
  }
  TrainJob job;
  job.backend = make_backend(parse_device(c.at("device").get<std::string>()), agreed_precision(c));
  job.run_config = run_identity("finetune", c);
  for (const std::string key : {"train", "test", "classes"}) {
    const std::string path = c.at(key);
    if (!path.empty()) job.data_hashes[path] = hex16(hash_file(path));
  }
  check_backend(model, *job.backend);
  check_data_parallel(model, *job.backend);
  OpenedRun opened = open_run_on_ranks(out, mode, {job.run_config, hex16(vocab->hash()), job.data_hashes}, "finetune");
  if (opened.finished) return finished_run(out);
  prepare_or_clean_up(out, opened, [&] { prepare_finetuning(c, *vocab, tok_options, format, job); });
  model.head = Head::kClassification;
  model.labels = job.train.label_names;
  model.hidden_dropout_prob = model.attention_probs_dropout_prob = c.at("dropout");
  job.model = model;
  job.vocab = vocab.get();
  job.init_dir = init;
  job.allow_nonfinite_init = c.at("allow_nonfinite");
  job.test_every_epoch = c.at("test_every") == "epoch";
  job.options = train_options(c);
  job.out_dir = out;
  job.command_line = command_line;
  if (Comm::world().leader())
    fmt::print(stderr, "finetune: {} train, {} validation, {} test examples, {} labels, {}\n", job.train.size(),
               job.valid.size(), job.test.size(), model.num_labels(), init.empty() ? "from scratch" : "from " + init);
  return train_in_folder(job, opened, tok_options);
}

}  // namespace tlm
