#include "tlm/model.h"

#include <omp.h>

#include <algorithm>

#include "backend/backend.h"
#include "core/parallel.h"
#include "model/conv_front.h"
#include "tlm/check.h"
#include "tlm/rng.h"

namespace tlm {

namespace k = kernels;

namespace {

// Dropout sites; with the layer index and the step's seed they key each mask.
enum Site : uint64_t { kEmbeddings = 0, kAttentionProbs = 1, kAttentionOutput = 2, kFfnOutput = 3, kPooled = 4 };
constexpr uint64_t kNoLayer = 0xFFFF;

// Offsets (in floats) of one encoder layer's tensors in the parameter / gradient buffers.
struct LayerOffsets {
  int64_t wqkv, bqkv;    // (3c, c), (3c): query, key, value stacked
  int64_t wo, bo;        // attention.output.dense (c, c), (c)
  int64_t ln1_g, ln1_b;  // attention.output.LayerNorm (c)
  int64_t wi, bi;        // intermediate.dense (f, c), (f)
  int64_t wo2, bo2;      // output.dense (c, f), (c)
  int64_t ln2_g, ln2_b;  // output.LayerNorm (c)
};

// Saved activations of one layer, each sized for limits.max_tokens rows.
struct LayerActs {
  float* qkv;                  // (n, 3c); in the last layer (n, 2c): keys and values only (none where absorbed)
  float* q;                    // last layer only: (r, c) queries of the selected rows
  float* probs;                // attention probabilities, sum_s heads * len_s^2
  float* ctx;                  // (rows, c) attention context before the output projection; rows = n, or r in
                               // the last layer (as for every tensor below)
  float* res1;                 // (n, c) input of the first LayerNorm
  float* ln1;                  // (n, c)
  float *ln1_mean, *ln1_rstd;  // (n)
  float* ffn_pre;              // (n, f) before GELU
  float* ffn_act;              // (n, f) after GELU
  float* res2;                 // (n, c) input of the second LayerNorm
  float* ln2;                  // (n, c) the layer's output
  float *ln2_mean, *ln2_rstd;  // (n)
};

// Whether the last layer absorbs its keys and values into attention (kernels.h) instead of
// projecting them at every row, on a back end that can. Always under a classification head (one
// query row per sequence: ~1/len_s + heads/c of the projection's cost). Under MLM where the
// absorbed products cost less than projecting even though they run in fp32: with f the share of
// rows that query (max_targets / max_tokens) and len the longest sequence, f (1 + heads len / c)
// times 2 on a bf16 back end (whose projection runs at about twice fp32's rate) below 0.75.
// Measured (2026-11-30, Zen 4; `tlm bench train`, whose limits hold the exact mask count): the
// demo's one-layer pre-training shapes (c 128, 2 heads, len 32; 0.47) 21.1-21.3 -> 19.0-19.2 ms per
// step, its two-layer ones 51.5-52.0 -> 49.4-49.9; bert1 (c 768, 12 heads, len 128) fp32 (0.45)
// 724 -> 656 ms, bf16 (0.89: not absorbed) 407 against 411. The demo's training limits give 0.57.
bool last_layer_absorbs(const BertConfig& cfg, const ModelLimits& lim, const Backend& be) {
  if (!be.absorbs_attention()) return false;
  if (cfg.head == Head::kClassification) return true;
  const double f = static_cast<double>(lim.max_targets) / lim.max_tokens;
  const double ratio = f * (1.0 + static_cast<double>(cfg.num_attention_heads) * lim.max_seq_len / cfg.hidden_size);
  return ratio * (be.precision() == Precision::kBf16 ? 2.0 : 1.0) < 0.75;
}

}  // namespace

struct BertModel::Impl {
  Backend& be;
  explicit Impl(Backend& backend) : be(backend) {}
  bool frozen = false;  // freeze_weights() told the back end the weights stay

  DeviceBuffer<float> params, grads;  // the parameter table's layout
  // The convolutional front-end, when the config has one: its tensors (pointers into params,
  // grads and stats, fixed for the model's life) and BatchNorm's running statistics.
  std::unique_ptr<ConvFrontEnd> conv;
  std::vector<ConvStageParams> conv_params;
  std::vector<ConvStageGrads> conv_grads;
  DeviceBuffer<float> stats;    // the table's buffers() layout
  int64_t batches_tracked = 0;  // training forwards since init: torch's num_batches_tracked
  float* conv_out = nullptr;    // (n, c) the front-end's output, the first transformer layer's input
  // The paper's padded front-end (conv.pad_to > 0): the embeddings and the front-end run on
  // e = b * pad_to rows, sequence s at rows [s * pad_to, s * pad_to + len_s) followed by [PAD]
  // rows; the real rows of its output are then gathered for the transformer layers.
  int pad_to = 0;
  std::vector<int32_t> pad_ids, pad_types, pad_positions, pad_offsets, real_rows;  // (e), (e), (e), (b + 1), (n)
  std::vector<uint64_t> pad_keys;                                                  // (e)
  DeviceBuffer<int32_t> d_pad_ids, d_pad_types, d_pad_positions, d_pad_offsets, d_real_rows;
  DeviceBuffer<uint64_t> d_pad_keys;
  float *padded_out = nullptr, *d_pad_a = nullptr, *d_pad_b = nullptr;  // (e, c) each
  std::vector<LayerOffsets> layer_off;
  int64_t word, pos, type, emb_g, emb_b;
  int64_t head_w, head_b, head_ln_g, head_ln_b, dec_b;  // MLM transform + decoder bias
  int64_t pool_w, pool_b, cls_w, cls_b;                 // classification
  // The head's first parameter (the head's are the table's last): where backward first reports.
  int64_t head_begin(Head head) const { return head == Head::kMaskedLM ? head_w : pool_w; }

  // Which rows of the word embeddings' gradient may be nonzero, where the back end can skip the
  // others (skips_dead_rows) and only the lookup writes them (a classification head: MLM's tied
  // decoder writes every row). Tracked while only backward() wrote grads() since the last
  // zero_grad(), or something else wrote only rows flagged first (flag_live_word_rows: a sum over
  // processes of the rows any process looked up): then the rows of no id looked up are +0.
  bool track_word_rows = false;
  bool word_rows_tracked = false;  // set where tracked: grads() start zero-filled
  std::vector<uint8_t> word_live;  // (vocab) 1: looked up since the last zero_grad()
  DeviceBuffer<uint8_t> d_word_live;
  // The word embeddings' rows (vocab, hidden) and their flags
  kernels::LiveRows word_rows(int hidden) const {
    return {word, static_cast<int64_t>(word_live.size()), hidden, d_word_live.data()};
  }
  kernels::LiveRows live_view;  // what zero_grad_rows() points to

  DeviceBuffer<float> acts;          // one buffer for every activation and backward scratch
  std::vector<int32_t> positions;    // (n) position id of every token
  std::vector<uint64_t> token_keys;  // (n) token_key() of every token: dropout masks follow tokens
  std::vector<uint64_t> sel_keys;    // (r) token_keys of the selected rows
  // The last layer is computed only at the r "selected" rows whose output reaches the loss
  // ([CLS] rows, or masked rows), in token order; keys and values still use every row (projected,
  // or absorbed into attention: see `absorbed`).
  std::vector<std::pair<int32_t, int32_t>> sel_pairs;  // (r) (token row, head target), sorted
  std::vector<int32_t> sel_rows;                       // (r) token rows, ascending
  std::vector<int32_t> sel_offsets;                    // (b + 1) selected rows per sequence
  std::vector<int32_t> head_rows;                      // (targets) selected-row index of each head target
  // Device copies of the batch and of the indexing above, uploaded by every forward.
  DeviceBuffer<int32_t> d_ids, d_types, d_positions, d_offsets, d_labels;  // (n), (n), (n), (b + 1), (targets)
  DeviceBuffer<int32_t> d_sel_rows, d_sel_offsets, d_head_rows;            // (r), (b + 1), (targets)
  DeviceBuffer<uint64_t> d_token_keys, d_sel_keys;                         // (n), (r)
  float *in_sel, *dq_sel, *d_sel;  // (r, c) last layer input rows, query gradient, scratch
  // The last layer's keys and values absorbed instead of projected at every row (kernels.h;
  // last_layer_absorbs says where), which keeps what its backward reads in absorbed_saved.
  bool absorbed = false;
  float *absorbed_saved = nullptr, *absorbed_scratch = nullptr;
  float *emb_sum, *emb_out, *emb_mean, *emb_rstd;
  const float* encoder_in() const { return conv ? conv_out : emb_out; }  // (n, c) transformer layer 0's input
  std::vector<LayerActs> layers;
  float *d0, *d1, *d2, *d3, *dqkv, *dffn, *att_scratch;
  // MLM head (m rows)
  float *h_m, *t_pre, *t_act, *t_ln, *t_mean, *t_rstd, *mlm_logits, *dm1, *dm2;
  // What a training forward's cross-entropy kept for backward (the back end's: the CPU keeps the
  // exponentials, so backward takes none): (m, vocab) then the logits' gradient, and (m) row sums.
  float* mlm_saved = nullptr;
  DeviceBuffer<double> d_ce_row_sums;
  bool split_ce = false;  // the back end has the split ops (asked once: the buffers are sized by it)
  bool ce_saved = false;  // the last forward filled them, and no backward used them yet
  // classification head (b rows)
  float *h_cls, *pooled, *pooled_drop, *cls_logits, *dc1, *dc2;

  // last forward
  const Batch* batch = nullptr;
  bool training = false;
  bool logits_are_probs = false;  // probabilities() replaced the logits by their softmax
  uint64_t seed = 0;
  int n = 0, b = 0, m = 0, r = 0;
  int longest = 0;  // its longest sequence: the bound attention is given (a GPU sizes its tiles by it)

  // The attention geometry of layer l for the last forward: every row queries in a fused
  // (n, 3c) qkv buffer, except in the last layer (selected query rows (r, c), keys/values (n, 2c),
  // or where absorbed the layer's input (n, c) in their place).
  kernels::AttentionShape attention_shape(const BertConfig& cfg, int l, float dropout_p) const {
    const int c = cfg.hidden_size;
    const bool last = l == cfg.num_hidden_layers - 1;
    return {last ? d_sel_offsets.data() : d_offsets.data(),
            d_offsets.data(),
            b,
            cfg.num_attention_heads,
            cfg.head_dim(),
            last ? c : 3 * c,
            last ? (absorbed ? c : 2 * c) : 3 * c,  // absorbed: the layer's input (n, c) is read in their place
            dropout_p,
            mix_key(seed, static_cast<uint64_t>(l), kAttentionProbs),
            last ? d_sel_keys.data() : d_token_keys.data(),
            last ? r : n,
            n,
            longest};
  }

  // Dropout of a (rows, c) activation of layer l (or kNoLayer) at `site`, in place; the rows are
  // every token, or the selected rows in the last layer (and the [CLS] rows of the pooler).
  void dropout(float* x, int rows, int cols, float p, uint64_t l, Site site, bool selected) const {
    be.dropout_apply(x, rows, cols, p, mix_key(seed, l, site), row_keys(selected));
  }
  // x (rows, c) = dropout(x) + resid, then y = LayerNorm(x): one fused pass (see kernels.h).
  void dropout_residual_layernorm(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                  float* mean, float* rstd, int rows, int c, float eps, float p, uint64_t l, Site site,
                                  bool selected) const {
    be.dropout_residual_layernorm_forward(x, resid, gamma, beta, y, mean, rstd, rows, c, eps, p, mix_key(seed, l, site),
                                          row_keys(selected));
  }
  // The dropout keys of the rows: the last layer's selected rows, or every token.
  const uint64_t* row_keys(bool selected) const { return selected ? d_sel_keys.data() : d_token_keys.data(); }

  // The rows the embeddings (and the front-end) run on: the packed tokens, or the padded rows.
  struct EmbeddingRows {
    const int32_t *ids, *positions, *types;  // types null: all 0
    const uint64_t* keys;                    // dropout keys
    int rows;
  };
  EmbeddingRows embedding_rows(bool has_types) const {
    if (pad_to > 0) {
      return {d_pad_ids.data(), d_pad_positions.data(), has_types ? d_pad_types.data() : nullptr, d_pad_keys.data(),
              b * pad_to};
    }
    return {d_ids.data(), d_positions.data(), has_types ? d_types.data() : nullptr, d_token_keys.data(), n};
  }
  // The embeddings' dropout (forward, and the same mask on their gradient), keyed like every
  // other site; its rows are the embedding rows (padded ones included).
  void embedding_dropout(float* x, const EmbeddingRows& er, int cols, float p) const {
    be.dropout_apply(x, er.rows, cols, p, mix_key(seed, kNoLayer, kEmbeddings), er.keys);
  }
  // Lays the batch out in padded rows ([PAD] after each sequence, type 0) and uploads it.
  void pad_batch(const Batch& in_batch, int pad_id);
  // Selects the rows of the last layer from `targets` (token rows, any order, unique).
  void select_rows(const int32_t* targets, int count, const Batch& in_batch);
  // Copies the batch and the indexing of the last forward to the device.
  void upload(const Batch& in_batch, bool mlm);
};

void BertModel::Impl::select_rows(const int32_t* targets, int count, const Batch& in_batch) {
  r = count;
  for (int i = 0; i < count; ++i) sel_pairs[i] = {targets[i], i};
  std::sort(sel_pairs.begin(), sel_pairs.begin() + count);  // in place: no allocation
  int s = 0;
  sel_offsets[0] = 0;
  for (int i = 0; i < count; ++i) {
    TLM_CHECK(i == 0 || sel_pairs[i].first != sel_pairs[i - 1].first, "masked position {} appears twice",
              sel_pairs[i].first);
    sel_rows[i] = sel_pairs[i].first;
    sel_keys[i] = token_keys[sel_rows[i]];
    head_rows[sel_pairs[i].second] = i;
    while (sel_rows[i] >= in_batch.offsets[s + 1]) sel_offsets[++s] = i;
  }
  while (s < in_batch.num_seqs()) sel_offsets[++s] = count;
}

void BertModel::Impl::pad_batch(const Batch& in_batch, int pad_id) {
  for (int s = 0; s < b; ++s) {
    const int start = in_batch.offsets[s], len = in_batch.offsets[s + 1] - start;
    const uint64_t id = in_batch.sequence_ids.empty() ? static_cast<uint64_t>(s) : in_batch.sequence_ids[s];
    pad_offsets[s] = s * pad_to;
    for (int t = 0; t < pad_to; ++t) {
      const int row = s * pad_to + t;
      const bool real = t < len;
      pad_ids[row] = real ? in_batch.ids[start + t] : pad_id;
      pad_types[row] = real && !in_batch.type_ids.empty() ? in_batch.type_ids[start + t] : 0;
      pad_positions[row] = t;
      pad_keys[row] = token_key(id, static_cast<uint64_t>(t));  // a real row's dropout key is its token's
      if (real) real_rows[start + t] = row;
    }
  }
  pad_offsets[b] = b * pad_to;
  const int e = b * pad_to;
  d_pad_ids.upload(pad_ids.data(), e);
  d_pad_types.upload(pad_types.data(), e);
  d_pad_positions.upload(pad_positions.data(), e);
  d_pad_keys.upload(pad_keys.data(), e);
  d_pad_offsets.upload(pad_offsets.data(), b + 1);
  d_real_rows.upload(real_rows.data(), n);
}

void BertModel::Impl::upload(const Batch& in_batch, bool mlm) {
  d_ids.upload(in_batch.ids.data(), n);
  if (!in_batch.type_ids.empty()) d_types.upload(in_batch.type_ids.data(), n);
  d_positions.upload(positions.data(), n);
  d_offsets.upload(in_batch.offsets.data(), b + 1);
  d_token_keys.upload(token_keys.data(), n);
  d_sel_rows.upload(sel_rows.data(), r);
  d_sel_offsets.upload(sel_offsets.data(), b + 1);
  d_sel_keys.upload(sel_keys.data(), r);
  if (mlm) {
    d_head_rows.upload(head_rows.data(), m);
    d_labels.upload(in_batch.mlm_labels.data(), m);
  } else if (!in_batch.labels.empty()) {
    d_labels.upload(in_batch.labels.data(), b);
  }
}

BertModel::BertModel(const BertConfig& config, const ModelLimits& limits, std::shared_ptr<Backend> backend)
    : config_(config), limits_(limits), table_(config), backend_(std::move(backend)) {
  TLM_CHECK(backend_ != nullptr, "a model needs a back end");
  impl_ = std::make_unique<Impl>(*backend_);
  config_.validate();
  TLM_CHECK(limits.max_tokens >= 1 && limits.max_seqs >= 1 && limits.max_seq_len >= 1,
            "model limits must be positive (max_tokens {}, max_seqs {}, max_seq_len {})", limits.max_tokens,
            limits.max_seqs, limits.max_seq_len);
  TLM_CHECK(limits.max_seq_len <= config.max_position_embeddings, "max_seq_len {} exceeds max_position_embeddings {}",
            limits.max_seq_len, config.max_position_embeddings);
  TLM_CHECK(omp_get_max_threads() <= kMaxThreads, "at most {} threads are supported", 256);
  Impl& I = *impl_;
  I.params = DeviceBuffer<float>(*backend_, table_.total_size());
  I.grads = DeviceBuffer<float>(*backend_, table_.total_size());
  auto off = [&](const std::string& name) { return table_.at(name).offset; };
  I.word = off("bert.embeddings.word_embeddings.weight");
  I.pos = off("bert.embeddings.position_embeddings.weight");
  I.type = off("bert.embeddings.token_type_embeddings.weight");
  I.emb_g = off("bert.embeddings.LayerNorm.weight");
  I.emb_b = off("bert.embeddings.LayerNorm.bias");
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = encoder_layer_prefix(config, l);
    LayerOffsets o;
    o.wqkv = off(p + "attention.self.query.weight");
    o.bqkv = off(p + "attention.self.query.bias");
    o.wo = off(p + "attention.output.dense.weight");
    o.bo = off(p + "attention.output.dense.bias");
    o.ln1_g = off(p + "attention.output.LayerNorm.weight");
    o.ln1_b = off(p + "attention.output.LayerNorm.bias");
    o.wi = off(p + "intermediate.dense.weight");
    o.bi = off(p + "intermediate.dense.bias");
    o.wo2 = off(p + "output.dense.weight");
    o.bo2 = off(p + "output.dense.bias");
    o.ln2_g = off(p + "output.LayerNorm.weight");
    o.ln2_b = off(p + "output.LayerNorm.bias");
    I.layer_off.push_back(o);
  }
  if (config.head == Head::kMaskedLM) {
    I.head_w = off("cls.predictions.transform.dense.weight");
    I.head_b = off("cls.predictions.transform.dense.bias");
    I.head_ln_g = off("cls.predictions.transform.LayerNorm.weight");
    I.head_ln_b = off("cls.predictions.transform.LayerNorm.bias");
    I.dec_b = off("cls.predictions.bias");
  } else {
    I.pool_w = off("bert.pooler.dense.weight");
    I.pool_b = off("bert.pooler.dense.bias");
    I.cls_w = off("classifier.weight");
    I.cls_b = off("classifier.bias");
  }

  // Lay out every activation in one buffer: first count, then allocate, then hand out pointers.
  const int64_t n = limits.max_tokens, c = config.hidden_size, f = config.intermediate_size;
  const int64_t probs = static_cast<int64_t>(config.num_attention_heads) * limits.max_seq_len * n;
  const int64_t m = std::max(1, limits.max_targets), b = limits.max_seqs, v = config.vocab_size;
  const int64_t labels = std::max(1, config.num_labels());
  std::vector<std::pair<float**, int64_t>> plan;
  auto want = [&](float** p, int64_t count) { plan.emplace_back(p, (count + 15) / 16 * 16); };
  I.pad_to = config.conv.enabled() ? config.conv.pad_to : 0;
  TLM_CHECK(I.pad_to == 0 || limits.max_seq_len <= I.pad_to,
            "sequences of up to {} tokens do not fit the front-end's padded length {}", limits.max_seq_len, I.pad_to);
  const int64_t emb_rows = I.pad_to > 0 ? b * I.pad_to : n;  // rows of the embeddings and the front-end
  want(&I.emb_sum, emb_rows * c);
  want(&I.emb_out, emb_rows * c);
  want(&I.emb_mean, emb_rows);
  want(&I.emb_rstd, emb_rows);
  want(&I.conv_out, config.conv.enabled() ? n * c : 0);
  for (float** p : {&I.padded_out, &I.d_pad_a, &I.d_pad_b}) want(p, I.pad_to > 0 ? emb_rows * c : 0);
  const int64_t r = std::max<int64_t>(m, b);  // selected rows of the last layer
  I.absorbed = last_layer_absorbs(config, limits, *backend_);
  I.layers.resize(config.num_hidden_layers);
  for (auto& L : I.layers) {
    want(&L.qkv, &L == &I.layers.back() && I.absorbed ? 0 : n * 3 * c);
    want(&L.q, &L == &I.layers.back() ? r * c : 0);
    want(&L.probs, probs);
    want(&L.ctx, n * c);
    want(&L.res1, n * c);
    want(&L.ln1, n * c);
    want(&L.ln1_mean, n);
    want(&L.ln1_rstd, n);
    want(&L.ffn_pre, n * f);
    want(&L.ffn_act, n * f);
    want(&L.res2, n * c);
    want(&L.ln2, n * c);
    want(&L.ln2_mean, n);
    want(&L.ln2_rstd, n);
  }
  for (float** d : {&I.d0, &I.d1, &I.d2, &I.d3}) want(d, n * c);
  const bool every_layer_absorbed = I.absorbed && config.num_hidden_layers == 1;  // no projected attention at all
  want(&I.dqkv, every_layer_absorbed ? 0 : n * 3 * c);
  for (float** p : {&I.in_sel, &I.dq_sel, &I.d_sel}) want(p, r * c);
  want(&I.dffn, n * f);
  want(&I.att_scratch, every_layer_absorbed ? 0 : backend_->attention_scratch_size(limits.max_seq_len));
  if (I.absorbed) {  // r query rows: one per sequence ([CLS]), or up to a whole sequence (MLM)
    const int heads = config.num_attention_heads, q_len = config.head == Head::kMaskedLM ? limits.max_seq_len : 1;
    want(&I.absorbed_saved, backend_->absorbed_attention_saved_size(static_cast<int>(r), heads, static_cast<int>(c)));
    want(&I.absorbed_scratch, backend_->absorbed_attention_scratch_size(static_cast<int>(r), q_len, limits.max_seq_len,
                                                                        heads, static_cast<int>(c)));
  }
  if (config.head == Head::kMaskedLM) {
    for (float** p : {&I.h_m, &I.t_pre, &I.t_act, &I.t_ln, &I.dm1, &I.dm2}) want(p, m * c);
    want(&I.t_mean, m);
    want(&I.t_rstd, m);
    want(&I.mlm_logits, m * v);
    I.split_ce = backend_->splits_cross_entropy();
    want(&I.mlm_saved, I.split_ce ? m * v : 0);
  } else {
    for (float** p : {&I.h_cls, &I.pooled, &I.pooled_drop, &I.dc1, &I.dc2}) want(p, b * c);
    want(&I.cls_logits, b * labels);
  }
  int64_t total = 0;
  for (auto& [p, count] : plan) total += count;
  I.acts = DeviceBuffer<float>(*backend_, total);
  total = 0;
  for (auto& [p, count] : plan) {
    *p = count > 0 ? I.acts.data() + total : nullptr;  // a buffer never used: a stray use faults
    total += count;
  }
  if (config.conv.enabled()) {
    I.conv = std::make_unique<ConvFrontEnd>(*backend_, config.conv, config.hidden_size,
                                            I.pad_to > 0 ? limits.max_seqs * I.pad_to : limits.max_tokens);
    I.stats = DeviceBuffer<float>(*backend_, table_.buffers_size());
    auto buffer = [&](const std::string& name) { return I.stats.data() + table_.buffer(name).offset; };
    for (int s = 0; s < I.conv->stages(); ++s) {
      const ConvStageNames nm = conv_stage_names(config.conv, s);
      const std::string p = kConvPrefix;
      I.conv_params.push_back({I.params.data() + off(p + nm.conv_weight), I.params.data() + off(p + nm.conv_bias),
                               I.params.data() + off(p + nm.bn_weight), I.params.data() + off(p + nm.bn_bias),
                               buffer(p + nm.running_mean), buffer(p + nm.running_var)});
      I.conv_grads.push_back({I.grads.data() + off(p + nm.conv_weight), I.grads.data() + off(p + nm.conv_bias),
                              I.grads.data() + off(p + nm.bn_weight), I.grads.data() + off(p + nm.bn_bias)});
    }
  }
  if (I.pad_to > 0) {
    for (auto* rows : {&I.pad_ids, &I.pad_types, &I.pad_positions}) rows->resize(emb_rows);
    I.pad_keys.resize(emb_rows);
    I.pad_offsets.resize(b + 1);
    I.real_rows.resize(n);
    I.d_pad_ids = DeviceBuffer<int32_t>(*backend_, emb_rows);
    I.d_pad_types = DeviceBuffer<int32_t>(*backend_, emb_rows);
    I.d_pad_positions = DeviceBuffer<int32_t>(*backend_, emb_rows);
    I.d_pad_offsets = DeviceBuffer<int32_t>(*backend_, b + 1);
    I.d_real_rows = DeviceBuffer<int32_t>(*backend_, n);
    I.d_pad_keys = DeviceBuffer<uint64_t>(*backend_, emb_rows);
  }
  I.positions.resize(n);
  I.token_keys.resize(n);
  I.sel_keys.resize(r);
  I.sel_pairs.resize(r);
  I.sel_rows.resize(r);
  I.head_rows.resize(r);
  I.sel_offsets.resize(b + 1);
  I.d_ids = DeviceBuffer<int32_t>(*backend_, n);
  I.d_types = DeviceBuffer<int32_t>(*backend_, n);
  I.d_positions = DeviceBuffer<int32_t>(*backend_, n);
  I.d_offsets = DeviceBuffer<int32_t>(*backend_, b + 1);
  I.d_labels = DeviceBuffer<int32_t>(*backend_, std::max(m, b));
  if (I.split_ce) {
    I.d_ce_row_sums = DeviceBuffer<double>(*backend_, m);
  }
  I.d_sel_rows = DeviceBuffer<int32_t>(*backend_, r);
  I.d_sel_offsets = DeviceBuffer<int32_t>(*backend_, b + 1);
  I.d_head_rows = DeviceBuffer<int32_t>(*backend_, r);
  I.d_token_keys = DeviceBuffer<uint64_t>(*backend_, n);
  I.d_sel_keys = DeviceBuffer<uint64_t>(*backend_, r);
  I.track_word_rows = config.head == Head::kClassification && backend_->skips_dead_rows();
  I.word_rows_tracked = I.track_word_rows;
  if (I.track_word_rows) {
    I.word_live.assign(static_cast<size_t>(config.vocab_size), 0);
    I.d_word_live = DeviceBuffer<uint8_t>(*backend_, config.vocab_size);
  }
}

BertModel::~BertModel() {
  if (impl_ && impl_->frozen) backend_->freeze_weights(nullptr, 0);  // the back end may outlive the weights
}

float* BertModel::params() { return impl_->params.data(); }
const float* BertModel::params() const { return impl_->params.data(); }
float* BertModel::grads() { return impl_->grads.data(); }

std::vector<float> BertModel::params_to_host() const {
  std::vector<float> host(static_cast<size_t>(num_params()));
  impl_->params.download(host.data(), num_params());
  return host;
}

void BertModel::set_params(const float* host, int64_t offset, int64_t count) {
  TLM_CHECK(offset >= 0 && count >= 0 && offset + count <= num_params(), "parameter range [{}, {}) outside [0, {})",
            offset, offset + count, num_params());
  if (impl_->frozen) backend_->freeze_weights(nullptr, 0);  // the weights change: copies made from them go
  impl_->frozen = false;
  impl_->params.upload(host, count, offset);
  backend_->synchronize();  // the host buffer may go away after this call
}

void BertModel::init_weights(uint64_t seed) {
  Rng rng(seed);
  const float stdev = config_.initializer_range;
  std::vector<float> host(static_cast<size_t>(num_params()));
  for (const auto& e : table_.entries()) {
    float* p = host.data() + e.offset;
    switch (e.init) {
      case ParamInfo::Init::kNormal:
        for (int64_t i = 0; i < e.size; ++i) p[i] = static_cast<float>(rng.normal() * stdev);
        break;
      case ParamInfo::Init::kZero:
        std::fill(p, p + e.size, 0.0f);
        break;
      case ParamInfo::Init::kOne:
        std::fill(p, p + e.size, 1.0f);
        break;
      case ParamInfo::Init::kUniform:
        for (int64_t i = 0; i < e.size; ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * e.bound);
        break;
    }
  }
  // BatchNorm's running statistics start at mean 0, variance 1 (torch's reset_running_stats).
  std::vector<float> stats(static_cast<size_t>(table_.buffers_size()));
  for (const auto& e : table_.buffers()) {
    std::fill(stats.begin() + e.offset, stats.begin() + e.offset + e.size,
              e.init == ParamInfo::Init::kOne ? 1.0f : 0.0f);
  }
  set_buffers(stats.data(), 0, table_.buffers_size());
  impl_->batches_tracked = 0;
  // nn.Embedding(padding_idx=pad_token_id): HF zeroes that row after the normal draw.
  float* pad_row = host.data() + impl_->word + static_cast<int64_t>(config_.pad_token_id) * config_.hidden_size;
  std::fill(pad_row, pad_row + config_.hidden_size, 0.0f);
  set_params(host.data(), 0, num_params());
}

void BertModel::zero_grad() {
  Impl& I = *impl_;
  if (I.word_rows_tracked) {  // all but the word embeddings, then their rows that were looked up
    const int64_t word_end = I.word + int64_t{config_.vocab_size} * config_.hidden_size;
    backend_->fill_zero(I.grads.data(), sizeof(float) * static_cast<size_t>(I.word));
    backend_->fill_zero(I.grads.data() + word_end, sizeof(float) * static_cast<size_t>(num_params() - word_end));
    backend_->zero_live_rows(I.grads.data(), I.word_rows(config_.hidden_size));
  } else {
    I.grads.zero();
  }
  if (I.track_word_rows) {
    backend_->synchronize();  // the last upload of the flags has read the host copy
    std::fill(I.word_live.begin(), I.word_live.end(), uint8_t{0});
    I.d_word_live.zero();
  }
  I.word_rows_tracked = I.track_word_rows;
}

void BertModel::grads_changed_outside_backward() { impl_->word_rows_tracked = false; }

const kernels::LiveRows* BertModel::zero_grad_rows() {
  Impl& I = *impl_;
  if (!I.word_rows_tracked) return nullptr;
  I.live_view = I.word_rows(config_.hidden_size);
  return &I.live_view;
}

const uint8_t* BertModel::live_word_rows() const {
  return impl_->word_rows_tracked ? impl_->word_live.data() : nullptr;
}

void BertModel::flag_live_word_rows(const uint8_t* flags) {
  Impl& I = *impl_;
  TLM_CHECK(I.word_rows_tracked, "flag_live_word_rows: the word embeddings' rows are not tracked now");
  for (size_t i = 0; i < I.word_live.size(); ++i) {
    if (flags[i] != 0) I.word_live[i] = 1;
  }
  I.d_word_live.upload(I.word_live.data(), static_cast<int64_t>(I.word_live.size()));
}

void BertModel::freeze_weights() {
  backend_->freeze_weights(params(), num_params());
  impl_->frozen = true;
}

std::vector<float> BertModel::buffers_to_host() const {
  std::vector<float> host(static_cast<size_t>(table_.buffers_size()));
  impl_->stats.download(host.data(), table_.buffers_size());
  return host;
}

void BertModel::set_buffers(const float* host, int64_t offset, int64_t count) {
  TLM_CHECK(offset >= 0 && count >= 0 && offset + count <= table_.buffers_size(),
            "buffer range [{}, {}) outside [0, {})", offset, offset + count, table_.buffers_size());
  impl_->stats.upload(host, count, offset);
  backend_->synchronize();
}

int64_t BertModel::batches_tracked() const { return impl_->batches_tracked; }
void BertModel::set_batches_tracked(int64_t count) { impl_->batches_tracked = count; }

namespace {

void check_batch(const Batch& batch, const BertConfig& cfg, const ModelLimits& lim) {
  const int n = batch.num_tokens(), b = batch.num_seqs();
  TLM_CHECK(b >= 1, "batch has no sequences");
  TLM_CHECK(b <= lim.max_seqs, "batch has {} sequences, the model was sized for {}", b, lim.max_seqs);
  TLM_CHECK(n <= lim.max_tokens, "batch has {} tokens, the model was sized for {}", n, lim.max_tokens);
  TLM_CHECK(batch.offsets[0] == 0 && batch.offsets[b] == n, "batch offsets must run from 0 to the token count {}", n);
  TLM_CHECK(batch.sequence_ids.empty() || static_cast<int>(batch.sequence_ids.size()) == b,
            "batch has {} sequence ids for {} sequences", batch.sequence_ids.size(), b);
  for (int s = 0; s < b; ++s) {
    const int len = batch.offsets[s + 1] - batch.offsets[s];
    TLM_CHECK(len >= 1 && len <= lim.max_seq_len, "sequence {} has length {} (allowed 1..{})", s, len, lim.max_seq_len);
  }
  for (int i = 0; i < n; ++i) {
    TLM_CHECK(batch.ids[i] >= 0 && batch.ids[i] < cfg.vocab_size,
              "token id {} at position {} is outside the vocabulary of {}", batch.ids[i], i, cfg.vocab_size);
  }
  if (!batch.type_ids.empty()) {
    TLM_CHECK(static_cast<int>(batch.type_ids.size()) == n, "type_ids has {} entries for {} tokens",
              batch.type_ids.size(), n);
    for (int t : batch.type_ids) TLM_CHECK(t >= 0 && t < cfg.type_vocab_size, "token type id {} out of range", t);
  }
  if (cfg.head == Head::kMaskedLM) {
    const int m = static_cast<int>(batch.mlm_positions.size());
    TLM_CHECK(m >= 1 && m == static_cast<int>(batch.mlm_labels.size()),
              "MLM batch needs matching, non-empty mlm_positions ({}) and mlm_labels ({})", m, batch.mlm_labels.size());
    TLM_CHECK(m <= lim.max_targets, "batch has {} masked positions, the model was sized for {}", m, lim.max_targets);
    for (int i = 0; i < m; ++i) {
      TLM_CHECK(batch.mlm_positions[i] >= 0 && batch.mlm_positions[i] < n, "masked position {} out of range",
                batch.mlm_positions[i]);
      TLM_CHECK(batch.mlm_labels[i] >= 0 && batch.mlm_labels[i] < cfg.vocab_size, "MLM label {} out of range",
                batch.mlm_labels[i]);
    }
  } else if (!batch.labels.empty()) {
    TLM_CHECK(static_cast<int>(batch.labels.size()) == b, "batch has {} labels for {} sequences", batch.labels.size(),
              b);
    for (int y : batch.labels)
      TLM_CHECK(y >= 0 && y < cfg.num_labels(), "label {} out of range (0..{})", y, cfg.num_labels() - 1);
  }
}

}  // namespace

ForwardResult BertModel::forward(const Batch& batch, bool training, uint64_t dropout_seed) {
  check_batch(batch, config_, limits_);
  Impl& I = *impl_;
  // The previous forward's uploads read the host indexing rewritten below (and its batch): they
  // must be done first. Free on the CPU.
  backend_->synchronize();
  I.ce_saved = false;  // until this forward's cross-entropy keeps its values
  I.batch = &batch;
  I.training = training;
  I.logits_are_probs = false;
  I.seed = dropout_seed;
  const int n = batch.num_tokens(), b = batch.num_seqs();
  const int c = config_.hidden_size, f = config_.intermediate_size, layers = config_.num_hidden_layers;
  const float eps = config_.layer_norm_eps;
  I.n = n;
  I.b = b;
  Backend& be = *backend_;
  const float* P = I.params.data();
  const float p_hidden = training ? config_.hidden_dropout_prob : 0.0f;
  const float p_attn = training ? config_.attention_probs_dropout_prob : 0.0f;
  const bool mlm = config_.head == Head::kMaskedLM;

  I.longest = 0;
  for (int s = 0; s < b; ++s) {
    I.longest = std::max(I.longest, batch.offsets[s + 1] - batch.offsets[s]);
    const uint64_t id = batch.sequence_ids.empty() ? static_cast<uint64_t>(s) : batch.sequence_ids[s];
    for (int i = batch.offsets[s]; i < batch.offsets[s + 1]; ++i) {
      I.positions[i] = i - batch.offsets[s];
      I.token_keys[i] = token_key(id, static_cast<uint64_t>(I.positions[i]));
    }
  }
  if (mlm) {
    I.m = static_cast<int>(batch.mlm_positions.size());
    I.select_rows(batch.mlm_positions.data(), I.m, batch);
  } else {
    I.select_rows(batch.offsets.data(), b, batch);  // the [CLS] row of every sequence
  }
  I.upload(batch, mlm);
  if (I.pad_to > 0) I.pad_batch(batch, config_.pad_token_id);

  const Impl::EmbeddingRows er = I.embedding_rows(!batch.type_ids.empty());
  be.embedding_forward(er.ids, er.positions, er.types, P + I.word, P + I.pos, P + I.type, I.emb_sum, er.rows, c);
  be.layernorm_forward(I.emb_sum, P + I.emb_g, P + I.emb_b, I.emb_out, I.emb_mean, I.emb_rstd, er.rows, c, eps);
  I.embedding_dropout(I.emb_out, er, c, p_hidden);
  if (I.conv) {
    if (I.pad_to > 0) {  // the front-end on the padded rows, then the real rows onwards
      I.conv->forward(I.emb_out, I.padded_out, I.conv_params, I.d_pad_offsets.data(), b, er.rows, training);
      be.gather_rows(I.padded_out, I.d_real_rows.data(), I.conv_out, n, c);
    } else {
      I.conv->forward(I.emb_out, I.conv_out, I.conv_params, I.d_offsets.data(), b, n, training);
    }
    if (training) ++I.batches_tracked;
  }

  const float* in = I.encoder_in();
  for (int l = 0; l < layers; ++l) {
    const LayerOffsets& o = I.layer_off[l];
    LayerActs& A = I.layers[l];
    const bool last = l == layers - 1;
    const int rows = last ? I.r : n;  // rows whose output this layer computes
    const float* resid = in;          // (rows, c) residual input
    const kernels::AttentionShape shape = I.attention_shape(config_, l, p_attn);
    if (last) {
      be.gather_rows(in, I.d_sel_rows.data(), I.in_sel, rows, c);
      resid = I.in_sel;
      be.linear_forward(I.in_sel, P + o.wqkv, P + o.bqkv, A.q, rows, c, c);  // query rows of (3c, c)
    }
    if (last && I.absorbed) {  // keys and values from `in` inside attention
      const int64_t cc = int64_t{c} * c;
      be.absorbed_attention_forward(A.q, in, P + o.wqkv + cc, P + o.wqkv + 2 * cc, P + o.bqkv + 2 * c, A.probs,
                                    I.absorbed_saved, A.ctx, I.absorbed_scratch, shape);
    } else if (last) {
      be.linear_forward(in, P + o.wqkv + int64_t{c} * c, P + o.bqkv + c, A.qkv, n, c, 2 * c);  // keys, values
      be.attention_forward(A.q, A.qkv, A.qkv + c, A.probs, A.ctx, I.att_scratch, shape);
    } else {
      be.linear_forward(in, P + o.wqkv, P + o.bqkv, A.qkv, n, c, 3 * c);
      be.attention_forward(A.qkv, A.qkv + c, A.qkv + 2 * c, A.probs, A.ctx, I.att_scratch, shape);
    }
    be.linear_forward(A.ctx, P + o.wo, P + o.bo, A.res1, rows, c, c);
    I.dropout_residual_layernorm(A.res1, resid, P + o.ln1_g, P + o.ln1_b, A.ln1, A.ln1_mean, A.ln1_rstd, rows, c, eps,
                                 p_hidden, l, kAttentionOutput, last);
    be.linear_forward(A.ln1, P + o.wi, P + o.bi, A.ffn_pre, rows, c, f);
    be.gelu_forward(A.ffn_pre, A.ffn_act, int64_t{rows} * f);
    be.linear_forward(A.ffn_act, P + o.wo2, P + o.bo2, A.res2, rows, f, c);
    I.dropout_residual_layernorm(A.res2, A.ln1, P + o.ln2_g, P + o.ln2_b, A.ln2, A.ln2_mean, A.ln2_rstd, rows, c, eps,
                                 p_hidden, l, kFfnOutput, last);
    in = A.ln2;
  }
  // `in` now holds the final hidden states of the selected rows, (r, c).

  ForwardResult result;
  if (mlm) {
    const int m = I.m, v = config_.vocab_size;
    be.gather_rows(in, I.d_head_rows.data(), I.h_m, m, c);
    be.linear_forward(I.h_m, P + I.head_w, P + I.head_b, I.t_pre, m, c, c);
    be.gelu_forward(I.t_pre, I.t_act, int64_t{m} * c);
    be.layernorm_forward(I.t_act, P + I.head_ln_g, P + I.head_ln_b, I.t_ln, I.t_mean, I.t_rstd, m, c, eps);
    be.linear_forward(I.t_ln, P + I.word, P + I.dec_b, I.mlm_logits, m, c, v);  // tied decoder
    const bool keep = training && I.split_ce;
    result.loss_sum = keep ? be.softmax_cross_entropy_forward(I.mlm_logits, I.d_labels.data(), I.mlm_saved,
                                                              I.d_ce_row_sums.data(), m, v)
                           : be.softmax_cross_entropy(I.mlm_logits, I.d_labels.data(), nullptr, 0.0f, m, v);
    I.ce_saved = keep;
    result.count = m;
  } else {
    const int labels = config_.num_labels();
    be.copy(I.h_cls, in, sizeof(float) * b * c);  // selected rows are the [CLS] rows in order
    be.linear_forward(I.h_cls, P + I.pool_w, P + I.pool_b, I.pooled, b, c, c);
    be.tanh_forward(I.pooled, I.pooled, int64_t{b} * c);
    be.copy(I.pooled_drop, I.pooled, sizeof(float) * b * c);
    const float p_cls = training ? config_.classifier_dropout_prob() : 0.0f;
    I.dropout(I.pooled_drop, b, c, p_cls, kNoLayer, kPooled, true);  // selected rows: the [CLS] rows
    be.linear_forward(I.pooled_drop, P + I.cls_w, P + I.cls_b, I.cls_logits, b, c, labels);
    if (!batch.labels.empty()) {
      result.loss_sum = be.softmax_cross_entropy(I.cls_logits, I.d_labels.data(), nullptr, 0.0f, b, labels);
      result.count = b;
    }
  }
  return result;
}

void BertModel::backward(float grad_scale, const std::function<void(int64_t)>& final_from) {
  Impl& I = *impl_;
  TLM_CHECK(I.batch != nullptr, "backward() called before forward()");
  TLM_CHECK(!I.logits_are_probs, "backward() after probabilities(): the logits are gone, run forward() again");
  const Batch& batch = *I.batch;
  const int n = I.n, b = I.b, c = config_.hidden_size, f = config_.intermediate_size;
  const int layers = config_.num_hidden_layers;
  Backend& be = *backend_;
  const float* P = I.params.data();
  float* G = I.grads.data();
  const float p_hidden = I.training ? config_.hidden_dropout_prob : 0.0f;
  const float p_attn = I.training ? config_.attention_probs_dropout_prob : 0.0f;
  if (I.word_rows_tracked) {  // flagged before any write, so a backward that throws leaves none unflagged
    const Impl::EmbeddingRows er = I.embedding_rows(!batch.type_ids.empty());
    const int32_t* ids = I.pad_to > 0 ? I.pad_ids.data() : batch.ids.data();  // er's rows, on the host
    for (int i = 0; i < er.rows; ++i) I.word_live[static_cast<size_t>(ids[i])] = 1;
    I.d_word_live.upload(I.word_live.data(), static_cast<int64_t>(I.word_live.size()));
  }

  // d0: gradient w.r.t. the final hidden states of the selected rows, (r, c).
  if (config_.head == Head::kMaskedLM) {
    const int m = I.m, v = config_.vocab_size;
    // dlogits: from what the training forward kept (the decoder bias gradient may come with them),
    // else from the logits, which they then replace
    float* dlogits = I.mlm_logits;
    float* dec_b_grad = G + I.dec_b;
    if (I.ce_saved) {
      dlogits = I.mlm_saved;
      if (be.softmax_cross_entropy_backward(I.mlm_saved, I.d_labels.data(), I.d_ce_row_sums.data(), grad_scale, m, v,
                                            dec_b_grad)) {
        dec_b_grad = nullptr;  // added
      }
      I.ce_saved = false;  // used: another backward starts from the logits
    } else {
      be.softmax_cross_entropy(I.mlm_logits, I.d_labels.data(), I.mlm_logits, grad_scale, m, v);
    }
    be.linear_backward(dlogits, I.t_ln, P + I.word, I.dm1, G + I.word, dec_b_grad, m, c, v);
    be.layernorm_backward(I.dm1, I.t_act, I.t_mean, I.t_rstd, P + I.head_ln_g, I.dm2, G + I.head_ln_g, G + I.head_ln_b,
                          m, c);
    be.gelu_backward(I.dm2, I.t_pre, I.dm1, int64_t{m} * c);
    be.linear_backward(I.dm1, I.h_m, P + I.head_w, I.dm2, G + I.head_w, G + I.head_b, m, c, c);
    // Every selected row is the target of exactly one head row: zero, then scatter.
    be.fill_zero(I.d0, sizeof(float) * m * c);
    be.scatter_add_rows(I.dm2, I.d_head_rows.data(), I.d0, m, c);
  } else {
    TLM_CHECK(!batch.labels.empty(), "backward() needs labels in the batch");
    const int labels = config_.num_labels();
    be.softmax_cross_entropy(I.cls_logits, I.d_labels.data(), I.cls_logits, grad_scale, b, labels);
    be.linear_backward(I.cls_logits, I.pooled_drop, P + I.cls_w, I.dc1, G + I.cls_w, G + I.cls_b, b, c, labels);
    const float p_cls = I.training ? config_.classifier_dropout_prob() : 0.0f;
    I.dropout(I.dc1, b, c, p_cls, kNoLayer, kPooled, true);
    be.tanh_backward(I.dc1, I.pooled, I.dc1, int64_t{b} * c);
    be.linear_backward(I.dc1, I.h_cls, P + I.pool_w, I.d0, G + I.pool_w, G + I.pool_b, b, c, c);
  }

  // Dropout backward is the same mask and scale applied to the gradient; p = 0 uses dy directly.
  auto through_dropout = [&](const float* dy, int rows, float p, int l, Site site, bool last) -> const float* {
    if (p <= 0.0f) return dy;
    be.copy(I.d2, dy, sizeof(float) * rows * c);
    I.dropout(I.d2, rows, c, p, static_cast<uint64_t>(l), site, last);
    return I.d2;
  };

  // Every head parameter's gradient is final here (the tied decoder's part of the word embeddings
  // is not: the lookup adds to it last).
  if (final_from) final_from(I.head_begin(config_.head));
  for (int l = layers - 1; l >= 0; --l) {
    const LayerOffsets& o = I.layer_off[l];
    const LayerActs& A = I.layers[l];
    const bool last = l == layers - 1;
    const int rows = last ? I.r : n;
    const int64_t rc = int64_t{rows} * c;
    const float* in = l == 0 ? I.encoder_in() : I.layers[l - 1].ln2;  // (n, c)
    // d0: gradient w.r.t. this layer's output (ln2), (rows, c)
    be.layernorm_backward(I.d0, A.res2, A.ln2_mean, A.ln2_rstd, P + o.ln2_g, I.d1, G + o.ln2_g, G + o.ln2_b, rows, c);
    // d1: d res2 = d ln1 (residual) + d ffn output
    const float* dffn_out = through_dropout(I.d1, rows, p_hidden, l, kFfnOutput, last);
    be.linear_backward(dffn_out, A.ffn_act, P + o.wo2, I.dffn, G + o.wo2, G + o.bo2, rows, f, c);
    be.gelu_backward(I.dffn, A.ffn_pre, I.dffn, int64_t{rows} * f);
    be.linear_backward(I.dffn, A.ln1, P + o.wi, I.d3, G + o.wi, G + o.bi, rows, c, f);
    be.add_inplace(I.d1, I.d3, rc);  // d1: total gradient w.r.t. ln1
    be.layernorm_backward(I.d1, A.res1, A.ln1_mean, A.ln1_rstd, P + o.ln1_g, I.d0, G + o.ln1_g, G + o.ln1_b, rows, c);
    // d0: d res1 = d input (residual) + d attention output
    const float* dattn_out = through_dropout(I.d0, rows, p_hidden, l, kAttentionOutput, last);
    be.linear_backward(dattn_out, A.ctx, P + o.wo, I.d3, G + o.wo, G + o.bo, rows, c, c);  // d3: d ctx
    const kernels::AttentionShape shape = I.attention_shape(config_, l, p_attn);
    if (last && I.absorbed) {
      // dq_sel: the query gradient (r, c); d1 (free here): the input's gradient through keys and
      // values (n, c). The key bias gets none (kernels.h).
      const int64_t cc = int64_t{c} * c;
      be.absorbed_attention_backward(I.d3, A.q, in, P + o.wqkv + cc, P + o.wqkv + 2 * cc, P + o.bqkv + 2 * c, A.probs,
                                     I.absorbed_saved, I.dq_sel, I.d1, G + o.wqkv + cc, G + o.wqkv + 2 * cc,
                                     G + o.bqkv + 2 * c, I.absorbed_scratch, shape);
      be.linear_backward(I.dq_sel, I.in_sel, P + o.wqkv, I.d_sel, G + o.wqkv, G + o.bqkv, rows, c, c);
      be.add_inplace(I.d_sel, I.d0, rc);  // + the residual path
      // d0: (n, c) from keys and values. d0 and d1 are both (n, c) scratch that no call keeps
      // across calls, so they stay exchanged.
      std::swap(I.d0, I.d1);
      be.scatter_add_rows(I.d_sel, I.d_sel_rows.data(), I.d0, rows, c);
    } else if (last) {
      // dqkv holds d(keys, values) as (n, 2c); dq_sel the query gradient (r, c).
      be.attention_backward(I.d3, A.q, A.qkv, A.qkv + c, A.probs, I.dq_sel, I.dqkv, I.dqkv + c, I.att_scratch, shape);
      be.linear_backward(I.dq_sel, I.in_sel, P + o.wqkv, I.d_sel, G + o.wqkv, G + o.bqkv, rows, c, c);
      be.add_inplace(I.d_sel, I.d0, rc);  // + the residual path
      be.linear_backward(I.dqkv, in, P + o.wqkv + int64_t{c} * c, I.d0, G + o.wqkv + int64_t{c} * c, G + o.bqkv + c, n,
                         c, 2 * c);  // d0: (n, c) from keys and values
      be.scatter_add_rows(I.d_sel, I.d_sel_rows.data(), I.d0, rows, c);
    } else {
      be.attention_backward(I.d3, A.qkv, A.qkv + c, A.qkv + 2 * c, A.probs, I.dqkv, I.dqkv + c, I.dqkv + 2 * c,
                            I.att_scratch, shape);
      be.linear_backward(I.dqkv, in, P + o.wqkv, I.d3, G + o.wqkv, G + o.bqkv, n, c, 3 * c);
      be.add_inplace(I.d0, I.d3, int64_t{n} * c);  // d0: gradient w.r.t. this layer's input
    }
    if (final_from) final_from(o.wqkv);  // the layer's first parameter
  }

  // d0: gradient w.r.t. the encoder's input (n, c). Below, d_emb and d_sum: w.r.t. the embeddings'
  // output and their sum before LayerNorm, (e, c) with e the embedding rows.
  const Impl::EmbeddingRows er = I.embedding_rows(!batch.type_ids.empty());
  float *d_emb = I.d0, *d_sum = I.d1;
  if (I.conv && I.pad_to > 0) {
    be.fill_zero(I.d_pad_a, sizeof(float) * er.rows * c);  // the [PAD] rows reach no loss but through the front-end
    be.scatter_add_rows(I.d0, I.d_real_rows.data(), I.d_pad_a, n, c);
    I.conv->backward(I.d_pad_a, I.d_pad_b, I.conv_params, I.conv_grads);
    d_emb = I.d_pad_b;
    d_sum = I.d_pad_a;
  } else if (I.conv) {
    I.conv->backward(I.d0, I.d3, I.conv_params, I.conv_grads);
    d_emb = I.d3;
  }
  I.embedding_dropout(d_emb, er, c, p_hidden);
  be.layernorm_backward(d_emb, I.emb_sum, I.emb_mean, I.emb_rstd, P + I.emb_g, d_sum, G + I.emb_g, G + I.emb_b, er.rows,
                        c);
  // HF's nn.Embedding(padding_idx): the lookup adds nothing to the [PAD] row's gradient (the tied
  // decoder may have), so with [PAD] rows that row is kept aside and put back.
  float* pad_grad = G + I.word + int64_t{config_.pad_token_id} * c;
  if (I.pad_to > 0) be.copy(I.d_pad_b, pad_grad, sizeof(float) * c);  // d_pad_b is free again here
  be.embedding_backward(d_sum, er.ids, er.positions, er.types, G + I.word, G + I.pos, G + I.type, er.rows, c);
  if (I.pad_to > 0) be.copy(pad_grad, I.d_pad_b, sizeof(float) * c);
  if (final_from) final_from(0);
}

std::vector<int64_t> BertModel::gradient_report_offsets() const {
  const Impl& I = *impl_;
  std::vector<int64_t> offsets = {I.head_begin(config_.head)};
  for (int l = config_.num_hidden_layers - 1; l >= 0; --l) offsets.push_back(I.layer_off[l].wqkv);
  offsets.push_back(0);
  return offsets;
}

const float* BertModel::logits() const {
  return config_.head == Head::kMaskedLM ? impl_->mlm_logits : impl_->cls_logits;
}

std::vector<float> BertModel::logits_to_host() const {
  const bool mlm = config_.head == Head::kMaskedLM;
  const int64_t count = int64_t{mlm ? impl_->m : impl_->b} * (mlm ? config_.vocab_size : config_.num_labels());
  std::vector<float> host(static_cast<size_t>(count));
  backend_->download(host.data(), logits(), sizeof(float) * host.size());
  return host;
}

void BertModel::probabilities(const Batch& batch, float* probs) {
  forward(batch, false, 0);
  const bool mlm = config_.head == Head::kMaskedLM;
  const int rows = mlm ? impl_->m : impl_->b, cols = mlm ? config_.vocab_size : config_.num_labels();
  float* logits = mlm ? impl_->mlm_logits : impl_->cls_logits;
  backend_->softmax_rows(logits, logits, rows, cols);  // in place on the device, then to the host
  impl_->logits_are_probs = true;
  backend_->download(probs, logits, sizeof(float) * rows * cols);
}

bool BertModel::absorbs_last_layer() const { return impl_->absorbed; }

double BertModel::train_flops(const Batch& batch) const {
  const double n = batch.num_tokens(), c = config_.hidden_size, f = config_.intermediate_size;
  const double d = config_.head_dim(), heads = config_.num_attention_heads;
  // A linear layer costs 2*rows*in*out forward and twice that backward (dx and dW).
  // The last layer computes queries, attention output and FFN only at the r selected rows.
  const double m = static_cast<double>(batch.mlm_positions.size());
  const double r = config_.head == Head::kMaskedLM ? m : batch.num_seqs();
  const int full_layers = config_.num_hidden_layers - 1;
  double flops = full_layers * 6.0 * n * (3 * c * c + c * c + 2 * c * f);
  flops += 6.0 * r * (c * c + c * c + 2 * c * f);
  double attn_full = 0, attn_last = 0;
  for (int s = 0; s < batch.num_seqs(); ++s) {
    const double len = batch.offsets[s + 1] - batch.offsets[s];
    attn_full += 12.0 * len * len * d * heads;  // 2 GEMMs forward, 4 backward, 2*len*len*d each
  }
  if (impl_->absorbed) {
    // Per query row: q_h Wk_h and z_h Wv_h^T, 2*c*c each over the heads; per (query, key) pair:
    // the scores and z, 2*heads*c each. x3 with backward.
    double pairs = 0;  // sum over sequences of query rows x key rows
    if (config_.head == Head::kMaskedLM) {
      for (const int32_t row : batch.mlm_positions) {
        const auto s = std::upper_bound(batch.offsets.begin(), batch.offsets.end(), row) - batch.offsets.begin() - 1;
        pairs += batch.offsets[s + 1] - batch.offsets[s];
      }
    } else {
      pairs = n;  // one query row per sequence
    }
    attn_last = 6.0 * (2.0 * r * c * c + 2.0 * heads * c * pairs);
  } else {
    flops += 6.0 * n * 2 * c * c;                  // keys and values at every row
    attn_last = attn_full * r / std::max(1.0, n);  // on average r/n of the query rows
  }
  flops += full_layers * attn_full + attn_last;
  if (config_.conv.enabled()) {  // each stage a GEMM of (n * c pixels) x (in * kh * kw) x out, thrice
    const ConvFrontShape front(config_.conv);
    const double rows = config_.conv.pad_to > 0 ? batch.num_seqs() * config_.conv.pad_to : n;  // padded: e rows
    for (int s = 0; s < front.stages(); ++s) {
      flops +=
          6.0 * rows * c * front.in_channels(s) * front.kernel_seq(s) * front.kernel_hidden(s) * front.out_channels(s);
    }
  }
  if (config_.head == Head::kMaskedLM) {
    flops += 6.0 * m * (c * c + c * config_.vocab_size);
  } else {
    flops += 6.0 * batch.num_seqs() * (c * c + c * config_.num_labels());
  }
  return flops;
}

}  // namespace tlm
