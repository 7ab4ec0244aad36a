// One declaration per op, forward and backward, with the shape of every tensor argument.
// All tensors are row-major float32. Backward ops *accumulate* (+=) into parameter gradients
// and *overwrite* input gradients unless stated otherwise. The CPU implementations live in
// kernels/cpu/; every op is checked against PyTorch (tests/golden) and finite differences
// (tests/test_kernels_gradcheck.cpp).
#pragma once

#include <cstdint>

namespace tlm::kernels {

// ---- linear: y = x W^T + b (Hugging Face nn.Linear layout: W is (out, in)) ----
// x (n, in), w (out, in), b (out) or null, y (n, out)
void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out);
// dy (n, out), x (n, in), w (out, in); dx (n, in) overwritten (null: skip);
// dw (out, in) and db (out) accumulated (db null: skip)
void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n, int in,
                     int out);

// ---- LayerNorm over the last dim (biased variance, as torch) ----
// x (n, c), gamma/beta (c); y (n, c), mean/rstd (n) saved for backward
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int n,
                       int c, float eps);
// dy (n, c), x (n, c), mean/rstd (n), gamma (c); dx (n, c) overwritten; dgamma/dbeta (c) accumulated
void layernorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        float* dx, float* dgamma, float* dbeta, int n, int c);

// ---- dropout + residual + LayerNorm, fused: the tail of the attention and FFN sublayers ----
// x (n, c): the sublayer's output, overwritten with dropout(x) + resid (what layernorm_backward
// reads as its input); resid (n, c); then y (n, c), mean, rstd (n) as layernorm_forward. Dropout
// as dropout_apply with (p, key, row_keys). One pass per row; the same bits as dropout_apply,
// add_inplace and layernorm_forward one after another.
void dropout_residual_layernorm_forward(float* x, const float* resid, const float* gamma, const float* beta, float* y,
                                        float* mean, float* rstd, int n, int c, float eps, float p, uint64_t key,
                                        const uint64_t* row_keys);

// ---- GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)) ----
void gelu_forward(const float* x, float* y, int64_t n);                     // x, y (n)
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n);  // dx (n) overwritten

// ---- tanh (pooler) ----
void tanh_forward(const float* x, float* y, int64_t n);
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n);  // uses the output y

// ---- dropout with a stateless mask, scale 1/(1-p) ----
// x (rows, cols) in place; row_keys (rows): each row's token_key(). Element j of row r is kept iff
// counter_uniform(row_stream(key, row_keys[r]), j) >= p, so a token's mask does not depend on its
// place in a packed batch. The same (key, p, row_keys) regenerates the same mask in backward.
void dropout_apply(float* x, int rows, int cols, float p, uint64_t key, const uint64_t* row_keys);

// ---- embeddings: out = word[ids] + pos[position] + type[type_ids] ----
// ids, type_ids (n) (type_ids null: all 0), positions (n); word (V, c), pos (P, c), type (T, c); out (n, c)
void embedding_forward(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const float* word,
                       const float* pos, const float* type, float* out, int n, int c);
// dout (n, c); dword/dpos/dtype accumulated (scatter-add, deterministic: column blocks per thread)
void embedding_backward(const float* dout, const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                        float* dword, float* dpos, float* dtype, int n, int c);

// ---- multi-head self-attention over packed variable-length sequences ----
// Sequence s has key/value rows [kv_offsets[s], kv_offsets[s+1]) and query rows
// [q_offsets[s], q_offsets[s+1]) (the same rows in a full layer; a subset of them when only some
// positions' outputs are needed, e.g. the last layer under a [CLS] or masked-token head).
// Tokens attend only within their own sequence, which equals Hugging Face's additive padding
// mask exactly (masked keys get probability exp(finfo.min) == 0 there).
// q: rows of q_stride floats, head h in columns [h*d, (h+1)*d); k, v likewise with kv_stride.
// probs: sum_s heads * qlen_s * kvlen_s floats, (s, head, i, j) blocks in sequence order,
// post-softmax, before dropout. ctx (num_q_rows, heads*d) overwritten.
// Dropout on the probabilities: entry (head h, query row i, key j) of a sequence is kept iff
// counter_uniform(row_stream(dropout_key, q_row_keys[i] + h), kv position j) >= dropout_p.
struct AttentionShape {
  const int32_t* q_offsets;   // (num_seqs + 1)
  const int32_t* kv_offsets;  // (num_seqs + 1)
  int num_seqs;
  int heads;
  int head_dim;
  int q_stride;   // floats between query rows (3c inside a fused qkv buffer)
  int kv_stride;  // floats between key (and value) rows
  float dropout_p;
  uint64_t dropout_key;
  const uint64_t* q_row_keys;  // (num_q_rows) token_key() of each query row; read only with dropout
  // Host-side geometry, for back ends whose offsets are out of the host's reach (a GPU sizes its
  // launches and work space from them): the query rows (q_offsets[num_seqs]), the key rows
  // (kv_offsets[num_seqs]) and a bound on any sequence's key rows. The CPU reads the offsets.
  int q_rows = 0;
  int kv_rows = 0;
  int max_kv_len = 0;
};
int64_t attention_probs_size(const AttentionShape& shape);
// scratch: attention_scratch_size(max_len, threads) floats.
void attention_forward(const float* q, const float* k, const float* v, float* probs, float* ctx, float* scratch,
                       const AttentionShape& shape);
// dctx (num_q_rows, c); dq, dk, dv overwritten, with the strides of q, k, v.
void attention_backward(const float* dctx, const float* q, const float* k, const float* v, const float* probs,
                        float* dq, float* dk, float* dv, float* scratch, const AttentionShape& shape);
int64_t attention_scratch_size(int max_len, int threads);

// ---- attention at few query rows, the key and value projections absorbed ----
// The same attention as a layer whose keys and values are x's rows projected, K = x Wk^T + bk and
// V = x Wv^T + bv, without projecting them: per sequence s and head h (Wk_h, Wv_h the head's d
// rows of Wk, Wv (d, c); x_s the sequence's rows),
//   scores = (q_h Wk_h) x_s^T / sqrt(d)                 (the key bias adds a constant per query
//                                                          row, which softmax removes: unread)
//   ctx_h  = (Pd x_s) Wv_h^T + rowsum(Pd) bv_h           (Pd: the probabilities after dropout)
// Worth it where a sequence has few queries against many keys (a [CLS] head: one per sequence; the
// masked rows of an MLM batch where heads * len is small next to c): it costs ~4c^2 + 4*heads*c*len_s
// per query row where projecting costs 4c^2 per key row.
// shape as attention_forward's, with q (num_q_rows, q_stride) the queries (bias included) and
// x (num_kv_rows, kv_stride) the layer's input in the place of k and v; probs and dropout as
// attention_forward's. wk, wv (c, c), bv (c). saved (absorbed_attention_saved_size) keeps what
// backward reads. ctx (num_q_rows, c) overwritten. Every product is fp32.
int64_t absorbed_attention_saved_size(int q_rows, int heads, int c);
// scratch: absorbed_attention_scratch_size(...) floats; max_q_len bounds any sequence's query
// rows and max_len its key rows.
int64_t absorbed_attention_scratch_size(int q_rows, int max_q_len, int max_len, int heads, int c, int threads);
void absorbed_attention_forward(const float* q, const float* x, const float* wk, const float* wv, const float* bv,
                                float* probs, float* saved, float* ctx, float* scratch, const AttentionShape& shape);
// dctx (num_q_rows, c); dq (q's layout) and dx (x's layout) overwritten (dx: the keys' and values'
// part of the input's gradient); dwk, dwv (c, c) and dbv (c) accumulated. The key bias's gradient
// is exactly 0 (see above): nothing is added to it.
void absorbed_attention_backward(const float* dctx, const float* q, const float* x, const float* wk, const float* wv,
                                 const float* bv, const float* probs, const float* saved, float* dq, float* dx,
                                 float* dwk, float* dwv, float* dbv, float* scratch, const AttentionShape& shape);

// ---- 2-D convolution over packed sequences, torch's Conv2d(padding="same") ----
// Each sequence s (rows [offsets[s], offsets[s+1]) of a packed batch) is an image of height
// len_s (its positions) and width `width` (the hidden units), zero beyond its own edges, so no
// sequence sees its neighbours. Activations are channels-last: x (n, width, in_ch) and
// y (n, width, out_ch); with one channel that is the model's (n, hidden) hidden states.
// w (out_ch, in_ch, kh, kw) and b (out_ch), torch's layout; padding as torch's "same": (k-1)/2
// before, the rest after (an even kernel pads one more after).
struct ConvShape {
  const int32_t* offsets;  // (num_seqs + 1) row offsets, device memory
  int num_seqs;
  int width;
  int in_ch, out_ch;
  int kh, kw;  // kernel extent along the sequence and along the width
};
int64_t conv2d_scratch_size(const ConvShape& shape);  // floats
// y overwritten; scratch: conv2d_scratch_size(shape) floats.
void conv2d_forward(const float* x, const float* w, const float* b, float* y, float* scratch, const ConvShape& shape);
// dy (n, width, out_ch), x as forward; dx overwritten (null: skip); dw, db accumulated.
void conv2d_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, float* scratch,
                     const ConvShape& shape);

// ---- BatchNorm over channels-last activations, torch's BatchNorm2d ----
// x, y (pixels, ch): every pixel of every sequence. Training normalises with the batch's mean
// and biased variance (saved as mean, rstd (ch) for backward) and moves the running statistics
// (ch) by `momentum` towards the mean and the unbiased variance, as torch does.
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                             float* running_mean, float* running_var, int64_t pixels, int ch, float eps,
                             float momentum);
// Inference: normalises with the running statistics.
void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, const float* running_mean,
                            const float* running_var, float* y, int64_t pixels, int ch, float eps);
// Backward of batchnorm_forward_train: dy, x (pixels, ch), mean, rstd, gamma (ch); dx overwritten
// (it may alias dy); dgamma, dbeta (ch) accumulated.
void batchnorm_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        float* dx, float* dgamma, float* dbeta, int64_t pixels, int ch);

// ---- softmax cross-entropy, fused ----
// logits (m, k), labels (m); returns the summed loss over rows. If dlogits is non-null it is
// overwritten with scale * (softmax - onehot) (it may alias logits).
double softmax_cross_entropy(const float* logits, const int32_t* labels, float* dlogits, float scale, int m, int k);
// The same split in two for training, so the exponentials are taken once: the forward returns the
// summed loss (softmax_cross_entropy's bits) and keeps exp(logits - row max) in saved (m, k) and
// their sums in row_sums (m); logits are only read. The backward turns saved into dlogits in place,
// softmax_cross_entropy's bits, and with db (k) non-null also adds dlogits' column sums to db (the
// bias gradient of the layer that made the logits, linear_backward's bits) in the same pass.
// A label < 0 is ignored (no loss, zero gradient row) in both.
double softmax_cross_entropy_forward(const float* logits, const int32_t* labels, float* saved, double* row_sums, int m,
                                     int k);
void softmax_cross_entropy_backward(float* saved, const int32_t* labels, const double* row_sums, float scale, int m,
                                    int k, float* db);
// probs (m, k) = softmax(logits) row-wise (may alias logits)
void softmax_rows(const float* logits, float* probs, int m, int k);

// ---- rows ----
// dst row i = src row rows[i]: src (any, c), rows (count), dst (count, c) overwritten
void gather_rows(const float* src, const int32_t* rows, float* dst, int count, int c);
// dst row rows[i] += src row i: src (count, c), rows (count) distinct, dst (any, c) accumulated
void scatter_add_rows(const float* src, const int32_t* rows, float* dst, int count, int c);

// ---- AdamW (torch's _single_tensor_adamw in float32) ----
// The scalars of one update, computed once per step (in double, as Python does, then rounded).
struct AdamWScalars {
  float decay_factor;  // 1 - lr * weight_decay, or 1 for parameters without decay
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float eps;
  // The gradient AdamW uses is grads[i] * grad_scale, one float multiply: global-norm clipping's
  // coefficient applied as the gradient is read, the same bits as scaling grads first (1: none).
  float grad_scale = 1.0f;
};
// params, m, v (n) updated in place from grads (n), which are only read
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s);

// ---- arrays with rows known to be zero ----
// Rows [0, rows) of width cols from element `offset` of an array: those not flagged in live
// ((rows), nonzero: the row may hold nonzeros) hold +0 only, so the ops below skip them and
// still give the dense op's bits (adding +0 to a sum of squares, or a +0 gradient to AdamW, is an
// IEEE operation the dense op does too). A classification model's word-embedding gradient after
// backward: only the batch's ids are live.
struct LiveRows {
  int64_t offset = 0;
  int64_t rows = 0;
  int cols = 0;
  const uint8_t* live = nullptr;
};
// sum_squares(x, n) without reading x's dead rows: the same value
double sum_squares_live(const float* x, int64_t n, const LiveRows& z);
// adamw_update(params, grads, m, v, n, s) without reading grads' dead rows: the same bits
void adamw_update_live(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWScalars& s,
                       const LiveRows& z);
// x's live rows set to +0 (its dead rows are +0 already, so afterwards the whole region is)
void zero_live_rows(float* x, const LiveRows& z);

// ---- elementwise helpers ----
void add_inplace(float* y, const float* x, int64_t n);  // y += x
void scale_inplace(float* y, float s, int64_t n);       // y *= s
double sum_squares(const float* x, int64_t n);          // sum x^2 in double
int64_t first_nonfinite(const float* x, int64_t n);     // index of the first NaN or inf, or -1

}  // namespace tlm::kernels
