// Inference latency of one classifier or a soft committee of several: single-text latency (one
// text at a time, as a service answers a request) and batched throughput, with members run one
// after another (each with all threads) or concurrently (one thread each, as one wide pass).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "tlm/committee_runner.h"
#include "tlm/dataset.h"
#include "tlm/model.h"

namespace tlm {

struct LatencyOptions {
  int texts = 200;  // single-text measurements (the first `texts` of the set)
  int batch = 64;   // sequences per forward pass in the batched measurement
  int warmup = 5;   // untimed single-text predictions first
  int threads = 1;  // threads available (concurrent mode runs min(members, threads) at once)
  CommitteeMode mode = CommitteeMode::kSequential;
};

// members: classifiers with the same labels, each sized for `opt.batch` sequences of `set`.
// Checks first that single-text and batched predictions agree, then times them. Returns
// {"single": {p50_ms, p90_ms, mean_ms}, "batched": {ms_per_text, texts_per_s}, "params",
// "flops_per_prediction", ...}.
nlohmann::json measure_latency(const std::vector<BertModel*>& members, const SequenceSet& set,
                               const LatencyOptions& opt);

// A committee against a reference model (a deep one) and against its first member alone, all on
// opt.threads: each configuration (reference, member, committee one member after another, and
// side by side when the cores allow) is validated and measured once (measure_latency), then timed
// in `rounds` interleaved rounds. Returns the measurements, each round's median single-text
// latency per configuration, and per pair (committee_concurrent/reference, ...) the per-round
// ratios, their geometric mean and its 95% interval (t over rounds of the log ratio).
nlohmann::json compare_latency(BertModel* reference, const std::vector<BertModel*>& members, const SequenceSet& set,
                               const LatencyOptions& opt, int rounds);

}  // namespace tlm
