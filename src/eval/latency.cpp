#include "tlm/latency.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>

#include "backend/backend.h"
#include "tlm/check.h"
#include "tlm/committee.h"
#include "tlm/committee_runner.h"
#include "tlm/stats.h"

namespace tlm {

using nlohmann::json;

namespace {

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Milliseconds of each of the first n texts of `set`, answered one at a time.
std::vector<double> single_text_ms(CommitteeRunner& runner, const SequenceSet& set, int n) {
  std::vector<double> ms(n);
  std::vector<int64_t> which;
  std::vector<float> out;
  for (int i = 0; i < n; ++i) {
    which.assign(1, i);
    const auto t0 = std::chrono::steady_clock::now();
    runner.predict(set, which, out);
    ms[i] = 1e3 * seconds_since(t0);
  }
  return ms;
}

}  // namespace

json measure_latency(const std::vector<BertModel*>& members, const SequenceSet& set, const LatencyOptions& opt) {
  TLM_CHECK(!members.empty(), "no models to time");
  const int n = static_cast<int>(std::min<int64_t>(opt.texts, set.size()));
  TLM_CHECK(n > 0, "no texts to time");
  CommitteeRunner runner(members, opt.mode, opt.threads);  // checks the members share their labels
  const int labels = runner.labels();

  // Validate, then time: one text at a time must give what the batched pass gives.
  std::vector<float> batched(static_cast<size_t>(n) * labels), one;
  std::vector<int64_t> which;
  auto run_batched = [&] {
    for (int start = 0; start < n; start += opt.batch) {
      which.clear();
      for (int i = start; i < std::min(n, start + opt.batch); ++i) which.push_back(i);
      runner.predict(set, which, one);
      std::copy(one.begin(), one.end(), batched.begin() + static_cast<size_t>(start) * labels);
    }
  };
  run_batched();
  double max_diff = 0, flops = 0;
  Batch single_batch;
  for (int i = 0; i < n; ++i) {
    which.assign(1, i);
    runner.predict(set, which, one);
    for (int c = 0; c < labels; ++c) max_diff = std::max<double>(max_diff, std::abs(one[c] - batched[i * labels + c]));
    make_batch(set, which, single_batch);
    for (const BertModel* m : members) flops += m->forward_flops(single_batch);
  }
  // Both passes compute each text alone, but a GEMM may sum a 1-row product in another order than
  // a 64-row one: ~1e-7 in fp32. In bf16 such a last-bit difference can move an activation across
  // a bf16 rounding boundary, one bf16 step (2^-8 relative) in a GEMM operand, which measured up
  // to 4e-4 in a probability (the demo's models), and up to 1.9e-3 on one of three demo members
  // once a classifier's last layer absorbed its keys and values (the same models in fp32: 8e-7).
  // A masking or packing fault moves probabilities by far more than either bound.
  const bool bf16 = std::any_of(members.begin(), members.end(),
                                [](const BertModel* m) { return m->backend().precision() == Precision::kBf16; });
  const double tolerance = bf16 ? 5e-3 : 1e-4;
  TLM_CHECK(max_diff < tolerance, "single-text and batched predictions differ by {} (expected < {})", max_diff,
            tolerance);

  for (int i = 0; i < std::min(opt.warmup, n); ++i) {
    which.assign(1, i);
    runner.predict(set, which, one);
  }
  const std::vector<double> ms = single_text_ms(runner, set, n);
  // Batched: the median of three passes over the same texts.
  std::vector<double> passes;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run_batched();
    passes.push_back(seconds_since(t0));
  }
  const double batched_s = percentile(passes, 0.5);
  int64_t params = 0;
  for (const BertModel* m : members) params += m->num_params();
  double mean = 0;
  for (double v : ms) mean += v / n;
  return json{{"members", members.size()},
              {"mode", opt.mode == CommitteeMode::kConcurrent ? "concurrent" : "sequential"},
              {"threads", opt.threads},
              {"texts", n},
              {"mean_tokens_per_text", static_cast<double>(set.offsets[n]) / n},
              {"single", {{"p50_ms", percentile(ms, 0.5)}, {"p90_ms", percentile(ms, 0.9)}, {"mean_ms", mean}}},
              {"batched", {{"batch", opt.batch}, {"ms_per_text", 1e3 * batched_s / n}, {"texts_per_s", n / batched_s}}},
              {"params", params},
              {"flops_per_prediction", flops / n},
              {"max_single_vs_batched_diff", max_diff}};
}

json compare_latency(BertModel* reference, const std::vector<BertModel*>& members, const SequenceSet& set,
                     const LatencyOptions& opt, int rounds) {
  TLM_CHECK(rounds >= 2, "a comparison needs at least 2 rounds, got {}", rounds);
  struct Config {
    std::string name;
    std::vector<BertModel*> models;
    CommitteeMode mode;
  };
  std::vector<Config> configs = {{"reference", {reference}, CommitteeMode::kSequential},
                                 {"member", {members.at(0)}, CommitteeMode::kSequential},
                                 {"committee_sequential", members, CommitteeMode::kSequential}};
  const int side_by_side = std::min(static_cast<int>(members.size()), opt.threads);
  if (side_by_side > 1) configs.push_back({"committee_concurrent", members, CommitteeMode::kConcurrent});
  json out = {{"rounds", rounds},
              {"members", members.size()},
              {"threads", opt.threads},
              {"members_side_by_side", side_by_side},
              {"measured", json::object()}};
  // Each configuration validated (single == batched) and measured once on its own...
  std::vector<std::unique_ptr<CommitteeRunner>> runners;
  std::vector<LatencyOptions> options(configs.size(), opt);
  for (size_t c = 0; c < configs.size(); ++c) {
    options[c].mode = configs[c].mode;
    out["measured"][configs[c].name] = measure_latency(configs[c].models, set, options[c]);
    runners.push_back(std::make_unique<CommitteeRunner>(configs[c].models, options[c].mode, options[c].threads));
  }
  // ...then timed in interleaved rounds (each round in another order), so drift of the machine
  // reaches every configuration alike; a round's figure is its median single-text latency.
  const int n = static_cast<int>(std::min<int64_t>(opt.texts, set.size()));
  std::map<std::string, std::vector<double>> medians;
  for (int r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < configs.size(); ++i) {
      const size_t c = (i + static_cast<size_t>(r)) % configs.size();
      medians[configs[c].name].push_back(percentile(single_text_ms(*runners[c], set, n), 0.5));
    }
  }
  out["round_p50_ms"] = medians;
  // Ratios of medians per round; their interval is the t interval of the mean log ratio.
  out["ratios"] = json::object();
  for (const auto& [num, den] : std::vector<std::pair<std::string, std::string>>{{"committee_concurrent", "reference"},
                                                                                 {"committee_sequential", "reference"},
                                                                                 {"committee_concurrent", "member"},
                                                                                 {"committee_sequential", "member"},
                                                                                 {"member", "reference"}}) {
    if (!medians.count(num)) continue;
    std::vector<double> per_round, logs;
    for (int r = 0; r < rounds; ++r) {
      per_round.push_back(medians[num][r] / medians[den][r]);
      logs.push_back(std::log(per_round.back()));
    }
    const Summary s = summarize(logs);
    out["ratios"][num + "/" + den] = {
        {"per_round", per_round},
        {"geometric_mean", std::exp(s.mean)},
        {"ci95", s.has_interval ? json::array({std::exp(s.ci_low), std::exp(s.ci_high)}) : json(nullptr)}};
  }
  return out;
}

}  // namespace tlm
