#!/usr/bin/env bash
# --precision through the real binary on synthetic data (seconds): bf16 training is deterministic,
# resumes exactly after SIGKILL, differs from fp32 and is part of a run's identity; checkpoints
# stay fp32; auto on a CPU without native bf16 (or capped by TLM_MAX_CPU_ISA) is fp32 with a note
# and runs exactly the fp32 code; eval and predict take it; BF16 and F16 checkpoints load exactly;
# --prefetch on gives the same bits.
# Usage: test_precision.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"

$py "$root/tests/experiment/make_mini_data.py" data
"$tlm" vocab train --corpus data/corpora/near.txt --size 300 --out vocab.txt >/dev/null
P=(--corpus data/corpora/near.txt --vocab vocab.txt --layers 1 --hidden 32 --heads 2 --max-len 16 --seq-mode chunk
   --batch 16 --threads 1 --sequences 400 --valid-sequences 50 --lr 3e-3)

# --- bf16: deterministic, not fp32, recorded, part of the identity, fp32 checkpoints
"$tlm" pretrain "${P[@]}" --precision bf16 --out b1 >/dev/null 2>&1
"$tlm" pretrain "${P[@]}" --precision bf16 --out b2 >/dev/null 2>&1
"$tlm" pretrain "${P[@]}" --precision fp32 --out f1 >/dev/null 2>&1
cmp b1/model.safetensors b2/model.safetensors || fail "two bf16 runs of one configuration differ"
# --prefetch (on by default on a GPU): the next step's batch built on a thread while a step computes
# is the same batch, across an epoch's end and a short last batch (400 = 26 x 15 + 10) too: the
# same bits (and below, a prefetching run killed and resumed equals a straight run)
"$tlm" pretrain "${P[@]}" --epochs 2 --batch 15 --out pf_off >/dev/null 2>&1 || fail "a 2-epoch run failed"
"$tlm" pretrain "${P[@]}" --epochs 2 --batch 15 --prefetch on --out pf_on >/dev/null 2>&1 || fail "--prefetch on failed"
cmp -s pf_off/model.safetensors pf_on/model.safetensors || fail "--prefetch on changed the weights"
diff <(grep -o '"loss":[^,]*' pf_off/log.jsonl) <(grep -o '"loss":[^,]*' pf_on/log.jsonl) >/dev/null ||
  fail "--prefetch on changed the logged losses"
cmp -s b1/model.safetensors f1/model.safetensors && fail "bf16 weights equal fp32's: bf16 was not applied"
[ "$(json b1/manifest.json "d['precision']")" = bf16 ] || fail "the manifest does not record bf16"
json b1/manifest.json "d['backend']" | grep -q "bf16" || fail "the manifest's back end is not bf16"
[ "$(json b1/manifest.json "d['run_config']['precision']")" = bf16 ] || fail "bf16 is not in the run's identity"
json b1/manifest.json "d['last_layer']" | grep -Eq "^keys and values (absorbed|projected)$" ||
  fail "the manifest does not say how the last layer computed its keys and values"
[ "$(json f1/manifest.json "'precision' in d['run_config']")" = False ] ||
  fail "fp32 entered the identity (fp32 runs made before --precision would change names)"
$py - <<'PY' || fail "a bf16 run's checkpoint is not fp32"
import json, struct
for path in ("b1/model.safetensors",):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {e["dtype"] for k, e in header.items() if k != "__metadata__"}
    assert dtypes == {"F32"}, dtypes
PY
$py - <<'PY' || fail "bf16 and fp32 validation losses are not close"
import json
b, f = (json.load(open(d + "/metrics.json")) for d in ("b1", "f1"))
b, f = b["final"]["valid_mlm_loss"], f["final"]["valid_mlm_loss"]
assert abs(b - f) < 0.02 * f, (b, f)  # 25 steps of a tiny model: a loose sanity bound, not the parity study
print("validation MLM loss fp32 %.4f, bf16 %.4f" % (f, b))
PY
expect_error "another configuration" "$tlm" pretrain "${P[@]}" --precision fp32 --resume b1
expect_error "\"fp16\" is not one of fp32, bf16, auto" "$tlm" pretrain "${P[@]}" --precision fp16 --out x
[ ! -e x ] || fail "a refused precision made a folder"

# --- exact resume in bf16: killed with SIGKILL after a checkpoint, resumed, equals a straight run
# (the killed and resumed runs prefetch their batches, the straight one does not)
R=("${P[@]}" --precision bf16 --sequences 2000 --epochs 6 --checkpoint-every 4 --keep-checkpoints 3)
"$tlm" pretrain "${R[@]}" --out straight >/dev/null 2>&1
"$tlm" pretrain "${R[@]}" --prefetch on --out killed >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  find killed/checkpoints -maxdepth 2 -name trainer_state.json 2>/dev/null | grep -q . && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ ! -f killed/model.safetensors ] || fail "the bf16 run finished before it could be killed; make it longer"
"$tlm" pretrain "${R[@]}" --prefetch on --resume killed >resume.txt 2>&1 || { cat resume.txt; fail "bf16 resume failed"; }
grep -q "resuming killed at step" resume.txt || fail "did not resume from a checkpoint"
cmp straight/model.safetensors killed/model.safetensors || fail "resumed bf16 weights differ from the straight run"
echo "bf16: deterministic, exact resume after SIGKILL"

# --- auto on a CPU without native bf16: fp32, with a note, exactly the fp32 run (the cap simulates
# such a CPU on one that has AVX512_BF16; oneDNN is capped alike)
TLM_MAX_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "$tlm" pretrain "${P[@]}" --precision auto --out a1 >/dev/null 2>a1.txt
grep -qE "auto precision: fp32 \((AVX512_BF16 is capped by TLM_MAX_CPU_ISA|this CPU has neither)" a1.txt ||
  { cat a1.txt; fail "auto under the cap did not say it resolved to fp32"; }
[ "$(json a1/manifest.json "d['precision']")" = fp32 ] || fail "auto under the cap is not fp32"
json a1/manifest.json "d['backend']" | grep -q "OpenBLAS fp32" || fail "auto under the cap entered a bf16 path"
json a1/manifest.json "d['backend']" | grep -q "row kernels on 8 floats" || fail "the cap let 16-float row kernels run"
cmp a1/model.safetensors f1/model.safetensors || fail "auto resolved to fp32 but computed something else"
if json f1/manifest.json "d['backend']" | grep -q "row kernels on 16 floats"; then
  echo "the uncapped fp32 run's 16-float row kernels trained the capped run's 8-float bits"
fi
[ "$(json a1/manifest.json "d['run_config']")" = "$(json f1/manifest.json "d['run_config']")" ] ||
  fail "auto resolved to fp32 has another identity than fp32"
expect_error "TLM_MAX_CPU_ISA=avx9: not one of" env TLM_MAX_CPU_ISA=avx9 "$tlm" pretrain "${P[@]}" --precision auto \
  --out x
expect_error "TLM_CPU_GEMM=mkl: not one of" env TLM_CPU_GEMM=mkl "$tlm" pretrain "${P[@]}" --out x
# oneDNN's fp32 GEMM trains the same model up to summation order
TLM_CPU_GEMM=onednn "$tlm" pretrain "${P[@]}" --precision fp32 --out o1 >/dev/null 2>&1
json o1/manifest.json "d['backend']" | grep -q "oneDNN fp32" || fail "TLM_CPU_GEMM=onednn was not used"

# --- training's default is auto: the run is auto's, bits and name, and says what auto resolved to
# (bf16 on a CPU with AVX512_BF16 or AMX, else fp32); inference's default stays fp32
"$tlm" pretrain "${P[@]}" --out d1 >/dev/null 2>d1.txt
"$tlm" pretrain "${P[@]}" --precision auto --out d2 >/dev/null 2>&1
resolved=$(sed -n 's/.*auto precision: \(bf16\|fp32\) (.*/\1/p' d1.txt | head -1)
[ -n "$resolved" ] || { cat d1.txt; fail "a pretrain without --precision did not say what auto resolved to"; }
[ "$(json d1/manifest.json "d['precision']")" = "$resolved" ] || fail "the default run is not in auto's precision"
cmp d1/model.safetensors d2/model.safetensors || fail "the default run differs from --precision auto"
[ "$(json d1/manifest.json "d['run_config']")" = "$(json d2/manifest.json "d['run_config']")" ] ||
  fail "the default run is named unlike --precision auto"
if [ "$resolved" = bf16 ]; then cmp -s d1/model.safetensors b1/model.safetensors || fail "auto's bf16 is not bf16"; fi
if [ "$resolved" = fp32 ]; then cmp -s d1/model.safetensors f1/model.safetensors || fail "auto's fp32 is not fp32"; fi
echo "training's default: auto, resolved to $resolved here"

# --- fine-tuning, eval and predict in bf16
T=(--train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
   --per-label-train 20 --per-label-test 10 --max-len 16 --batch 8 --epochs 3 --lr 3e-3 --threads 1)
"$tlm" finetune "${T[@]}" --init f1 --precision bf16 --out ft >/dev/null 2>&1 || fail "bf16 fine-tuning failed"
"$tlm" finetune "${T[@]}" --init f1 --precision bf16 --prefetch on --out ftp >/dev/null 2>&1 ||
  fail "fine-tuning with --prefetch on failed"
cmp -s ft/model.safetensors ftp/model.safetensors || fail "--prefetch on changed a fine-tuned model"
[ "$(json ft/manifest.json "d['precision']")" = bf16 ] || fail "the fine-tune manifest does not record bf16"
for p in fp32 bf16; do
  "$tlm" eval --model ft --data data/task/test.csv --format csv --classes data/task/classes.txt --threads 1 \
    --precision "$p" --out "eval_$p.json" >/dev/null 2>&1 || fail "eval --precision $p failed"
done
# bench latency in bf16: its check that single texts predict as batches holds at bf16's tolerance
"$tlm" bench latency --model ft --data data/task/test.csv --format csv --classes data/task/classes.txt --texts 40 \
  --batch 16 --threads 1 --precision bf16 --json lat_bf16.json >/dev/null 2>lat.txt || { cat lat.txt; fail "bench latency --precision bf16 failed"; }
[ "$(json lat_bf16.json "d['precision']")" = bf16 ] || fail "the latency result does not record bf16"
head -20 data/task/test.csv | cut -d, -f2- >texts.txt
"$tlm" predict --model ft --probs --input texts.txt --precision bf16 --threads 1 >pred_bf16.jsonl
"$tlm" predict --model ft --probs --input texts.txt --precision fp32 --threads 1 >pred_fp32.jsonl
[ "$(wc -l <pred_bf16.jsonl)" = 20 ] || fail "predict --precision bf16 did not label every text"
cmp -s pred_bf16.jsonl pred_fp32.jsonl && fail "bf16 and fp32 probabilities are identical: bf16 was not applied"
"$tlm" predict --model ft --probs --input texts.txt --threads 1 >pred_default.jsonl
cmp pred_default.jsonl pred_fp32.jsonl || fail "predict's default is not fp32"

# --- checkpoints in BF16 and F16 load, widened exactly: they predict as the fp32 file holding the
# same rounded values
for half in bf16 f16; do
  cp -r ft "ft_$half"
  cp -r ft "ft_${half}_as_f32"
  $py - "$root/ref" "$half" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch, st
half = sys.argv[2]
dtype = torch.bfloat16 if half == "bf16" else torch.float16
tensors, meta = st.load("ft/model.safetensors")
st.save(f"ft_{half}/model.safetensors", {k: v.to(dtype) for k, v in tensors.items()}, meta)
st.save(f"ft_{half}_as_f32/model.safetensors", {k: v.to(dtype).float() for k, v in tensors.items()}, meta)
PY
  "$tlm" predict --model "ft_$half" --probs --input texts.txt --threads 1 >"p_$half.jsonl" ||
    fail "a $half checkpoint did not load"
  "$tlm" predict --model "ft_${half}_as_f32" --probs --input texts.txt --threads 1 >"p_${half}_as_f32.jsonl"
  cmp "p_$half.jsonl" "p_${half}_as_f32.jsonl" || fail "a $half checkpoint was not widened exactly"
done
echo "bf16/f16 checkpoints: loaded exactly"
echo "precision: all checks passed"
