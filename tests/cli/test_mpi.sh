#!/usr/bin/env bash
# Data-parallel training under mpirun (two ranks on this machine, oversubscribed if need be):
# two 2-rank runs give bit-identical weights; a 2-rank run follows the 1-process run (the loss of
# its first step equal, the ranks holding different numbers of masked tokens); a global batch that
# does not divide evenly, and one that leaves a rank nothing, fine-tune; SIGTERM to one rank stops
# both at the same step, and --resume under mpirun finishes bit-identical to a straight run;
# kill -9 of one rank ends the job and --resume continues it; --overlap-grads (the sum bucket by
# bucket during backward) gives the same bits; bench allreduce and the data-parallel
# bench train run and report; what does not run under mpirun is refused. Without mpirun (package
# openmpi-bin) it skips (exit 77); a build without MPI must refuse to run as several ranks.
# Usage: test_mpi.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"
use_mpirun
mpi2=(mpirun -n 2 --oversubscribe --bind-to none)

$py "$root/tests/experiment/make_mini_data.py" data >/dev/null
cat data/corpora/near.txt data/corpora/far.txt > corpus.txt
"$tlm" vocab train --corpus corpus.txt --size 300 --out vocab.txt >/dev/null
pre_any=(pretrain --corpus corpus.txt --vocab vocab.txt --layers 2 --hidden 32 --heads 2 --max-len 24 --sequences 600
         --valid-sequences 40 --batch 16 --epochs 1 --lr 3e-3 --warmup 0.1 --log-every 1 --threads 1)
pre=("${pre_any[@]}" --precision fp32)  # the tolerances below are fp32's (training's default, auto, is bf16 on some CPUs)

if ! "${mpi2[@]}" "$tlm" "${pre[@]}" --max-steps 2 --out probe >probe.txt 2>&1; then
  grep -q "built without MPI" probe.txt || { cat probe.txt; fail "a 2-rank run failed"; }
  [ ! -e probe/model.safetensors ] || fail "a build without MPI trained under mpirun"
  echo "SKIP: this tlm is built without MPI (it refuses to run as 2 ranks, as it must); the data-parallel checks need libopenmpi-dev"
  exit 77
fi
[ "$(json probe/manifest.json "d['processes']")" = 2 ] || fail "the manifest does not say 2 processes"
json probe/manifest.json "d['mpi']" | grep -q "MPI" || fail "the manifest does not name the MPI library"

# --- pre-training: 2 ranks twice, bit for bit; against one process
"${mpi2[@]}" "$tlm" "${pre[@]}" --max-steps 30 --out p2a >/dev/null 2>&1 || fail "2-rank pre-training failed"
"${mpi2[@]}" "$tlm" "${pre[@]}" --max-steps 30 --out p2b >/dev/null 2>&1 || fail "2-rank pre-training failed"
"$tlm" "${pre[@]}" --max-steps 30 --out p1 >/dev/null 2>&1 || fail "1-process pre-training failed"
cmp -s p2a/model.safetensors p2b/model.safetensors || fail "two 2-rank runs differ"
cmp -s p2a/model.safetensors p1/model.safetensors && echo "note: 2 ranks and 1 process agree bit for bit"
$py - "$root/ref" <<'PY' || fail "2 ranks do not follow 1 process"
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, st
# Step 1 starts from the same weights: its loss is the mean over the global batch's masked tokens
# whichever rank holds them, so it agrees to float rounding (the sums are grouped by rank).
logs = {r: [json.loads(l) for l in open(r + "/log.jsonl") if '"loss"' in l] for r in ("p1", "p2a")}
a, b = logs["p1"][0], logs["p2a"][0]
assert a["step"] == b["step"] == 1 and abs(a["loss"] - b["loss"]) <= 1e-6 * a["loss"], (a, b)
assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-5 * a["grad_norm"], (a, b)
# After 30 steps only the summation order differs (per step a relative 1e-7 in each gradient),
# which AdamW carries on: the weights agree to 1e-4 normwise and the loss curve to 1e-3.
w1, _ = st.load("p1/model.safetensors")
w2, _ = st.load("p2a/model.safetensors")
num = sum(float((w1[k].double() - w2[k].double()).pow(2).sum()) for k in w1)
den = sum(float(w1[k].double().pow(2).sum()) for k in w1)
rel = (num / den) ** 0.5
print(f"2 ranks against 1 process after 30 steps: weights differ by {rel:.2e} normwise")
assert rel <= 1e-4, rel
for x, y in zip(logs["p1"], logs["p2a"]):
    assert abs(x["loss"] - y["loss"]) <= 1e-3 * x["loss"], (x, y)
# ... and the check can fail: 30 steps moved the weights far more than that.
w0, _ = st.load("probe/model.safetensors")
moved = sum(float((w1[k].double() - w0[k].double()).pow(2).sum()) for k in w1 if k in w0) ** 0.5 / den ** 0.5
assert moved > 100 * rel, (moved, rel)
PY

# --- fine-tuning: a global batch of 7 (shards of 3 and 4, a short last batch); a batch of 1
# leaves rank 0 nothing at every step, so the sum is the one process's gradient exactly
ft=(finetune --train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
    --init p1 --per-label-train 30 --valid-per-label 5 --epochs 2 --lr 2e-3 --max-len 24 --threads 1 --precision fp32)
"${mpi2[@]}" "$tlm" "${ft[@]}" --batch 7 --out f2 >/dev/null 2>&1 || fail "2-rank fine-tuning (batch 7) failed"
"$tlm" "${ft[@]}" --batch 7 --out f1 >/dev/null 2>&1 || fail "1-process fine-tuning failed"
$py - <<'PY' || fail "2-rank fine-tuning does not follow 1 process"
import json
m1, m2 = (json.load(open(r + "/metrics.json")) for r in ("f1", "f2"))
assert m1["steps"] == m2["steps"] > 0, (m1["steps"], m2["steps"])
assert abs(m1["final_train_loss"] - m2["final_train_loss"]) <= 1e-3 * m1["final_train_loss"]
assert abs(m1["test"]["accuracy"] - m2["test"]["accuracy"]) <= 0.02, (m1["test"], m2["test"])
PY
[ -s f2/test_predictions.safetensors ] || fail "the 2-rank run saved no test predictions"
# --- a shard with sequences but no masked token (most batches hold the one forced target):
# it adds nothing, and the run still follows one process
"${mpi2[@]}" "$tlm" "${pre[@]}" --mask-prob 0.005 --max-steps 20 --out m2 >/dev/null 2>&1 || fail "sparse masks, 2 ranks"
"$tlm" "${pre[@]}" --mask-prob 0.005 --max-steps 20 --out m1 >/dev/null 2>&1 || fail "sparse masks, 1 process"
$py - "$root/ref" <<'PY' || fail "sparse masks: 2 ranks do not follow 1 process"
import sys
sys.path.insert(0, sys.argv[1])
import st
a, _ = st.load("m1/model.safetensors")
b, _ = st.load("m2/model.safetensors")
num = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a)
den = sum(float(a[k].double().pow(2).sum()) for k in a)
assert (num / den) ** 0.5 <= 1e-4, (num / den) ** 0.5
PY
"${mpi2[@]}" "$tlm" "${ft[@]}" --batch 1 --max-steps 12 --out b2 >/dev/null 2>&1 || fail "2-rank batch-1 run failed"
"$tlm" "${ft[@]}" --batch 1 --max-steps 12 --out b1 >/dev/null 2>&1 || fail "1-process batch-1 run failed"
cmp -s b1/model.safetensors b2/model.safetensors || fail "a rank without data changed the step"

# --- --overlap-grads: gradients summed bucket by bucket while backward runs (1 KB buckets: one per
# report, the head, each layer, then the embeddings). A sum of two ranks' terms is the same however
# the buffer is cut, so the weights, losses and gradient norms must equal the plain 2-rank run's bit
# for bit; a bucket summed before backward finished it, or never, or a loss not summed, would change
# them. Also at batch 1, where rank 0 holds no sequence and reports everything at once.
same_logs() {  # same_logs RUN_A RUN_B: every logged loss and gradient norm identical
  $py - "$1" "$2" <<'PY' || fail "$1 and $2 logged different losses or gradient norms"
import json, sys
a, b = ([(r.get("step"), r.get("loss"), r.get("grad_norm")) for r in map(json.loads, open(d + "/log.jsonl"))]
        for d in sys.argv[1:3])
assert len(a) > 1 and a == b, (a[:3], b[:3])
PY
}
"${mpi2[@]}" "$tlm" "${pre[@]}" --max-steps 30 --overlap-grads --bucket-mb 0.001 --out p2o >/dev/null 2>&1 ||
  fail "2-rank pre-training with --overlap-grads failed"
cmp -s p2o/model.safetensors p2a/model.safetensors || fail "--overlap-grads changed the 2-rank weights"
same_logs p2o p2a
"${mpi2[@]}" "$tlm" "${ft[@]}" --batch 1 --max-steps 12 --overlap-grads --bucket-mb 0.001 --out b2o >/dev/null 2>&1 ||
  fail "2-rank batch-1 run with --overlap-grads failed"
cmp -s b2o/model.safetensors b1/model.safetensors || fail "--overlap-grads with an idle rank changed the step"
same_logs b2o b2
# The plain path sums a classifier's word-embedding gradients only at the rows some rank looked up
# (the rest are +0 everywhere) and goes on skipping the rest in the gradient norm and AdamW;
# --overlap-grads sums every row and skips none. Two ranks' terms make the same sum either way, so
# batch 7 (both ranks busy, different ids) must agree bit for bit; a rank's rows left out of the
# sum, or zeroed rows left flagged wrongly, would change the weights.
"${mpi2[@]}" "$tlm" "${ft[@]}" --batch 7 --overlap-grads --bucket-mb 0.001 --out f2o >/dev/null 2>&1 ||
  fail "2-rank fine-tuning (batch 7) with --overlap-grads failed"
cmp -s f2o/model.safetensors f2/model.safetensors || fail "the sum over looked-up word rows changed the 2-rank fine-tuning"
same_logs f2o f2

# --- fine-tuning killed at a checkpoint and resumed under mpirun ends bit-identical to a straight
# run: the word rows flagged by the sparse sum are not saved, and need not be (a resumed model
# starts with none, as every step does after zero_grad)
ftr=("${ft[@]}" --batch 7 --checkpoint-every 4 --log-every 1)
"${mpi2[@]}" "$tlm" "${ftr[@]}" --out ftstraight >/dev/null 2>&1 || fail "straight 2-rank fine-tuning failed"
set +e
"${mpi2[@]}" env TLM_FAULT_INJECT=kill-before-checkpoint-rename:8 "$tlm" "${ftr[@]}" --out ftkill >/dev/null 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "the fault injection did not stop the 2-rank fine-tuning"
"${mpi2[@]}" "$tlm" "${ftr[@]}" --resume ftkill >ftresume.txt 2>&1 || { cat ftresume.txt; fail "--resume of the 2-rank fine-tuning failed"; }
grep -q "resuming ftkill at step 4" ftresume.txt || { cat ftresume.txt; fail "the fine-tuning did not resume at step 4"; }
cmp -s ftstraight/model.safetensors ftkill/model.safetensors || fail "the resumed 2-rank fine-tuning differs from the straight one"

# --- SIGTERM to one rank: both stop at the same step with a checkpoint; --resume under mpirun
# finishes bit-identical to a straight 2-rank run
long=("${pre[@]}" --epochs 8 --checkpoint-every 5)  # ~300 steps: the stop lands mid-way on a loaded machine
"${mpi2[@]}" "$tlm" "${long[@]}" --out straight >/dev/null 2>&1 || fail "straight 2-rank run failed"
"${mpi2[@]}" "$tlm" "${long[@]}" --out sig >sig.txt 2>&1 &
launcher=$!
for _ in $(seq 1200); do [ -s sig/log.jsonl ] && [ "$(grep -c '"loss"' sig/log.jsonl)" -ge 12 ] && break; sleep 0.1; done
[ "$(grep -c '"loss"' sig/log.jsonl)" -ge 12 ] || fail "the 2-rank run logged no 12 steps in 2 minutes"
ranks=($(pgrep -P "$launcher" -f "tlm pretrain" || true))
[ ${#ranks[@]} -eq 2 ] || fail "expected 2 ranks under mpirun, found ${#ranks[@]}"
kill -TERM "${ranks[1]}"
timeout 120 tail --pid="$launcher" -f /dev/null || fail "the ranks did not stop together (the job hung)"
wait "$launcher" && fail "the stopped job exited 0"
grep -q "stopped by signal 15" sig.txt || { cat sig.txt; fail "no stop reported"; }
[ "$(json sig/manifest.json "d['status']")" = interrupted ] || fail "the stopped run is not marked interrupted"
"${mpi2[@]}" "$tlm" "${long[@]}" --resume sig >resume.txt 2>&1 || fail "--resume under mpirun failed"
grep -q "resuming sig at step" resume.txt || fail "the stopped run did not resume from its checkpoint"
cmp -s straight/model.safetensors sig/model.safetensors || fail "the resumed run differs from the straight one"

# --- kill -9 of one rank: the job ends (no hang), and --resume continues it
"${mpi2[@]}" "$tlm" "${long[@]}" --out k9 >k9.txt 2>&1 &
launcher=$!
# a complete checkpoint (step-NNNNNNNNN with its trainer state; a .tmp folder is one being written)
wait_for_file "k9/checkpoints/step-?????????/trainer_state.json" 120 "no checkpoint in 2 minutes"
ranks=($(pgrep -P "$launcher" -f "tlm pretrain" || true))
[ ${#ranks[@]} -eq 2 ] || fail "expected 2 ranks under mpirun, found ${#ranks[@]}"
kill -KILL "${ranks[1]}"
timeout 60 tail --pid="$launcher" -f /dev/null || fail "the job hung after one rank was killed"
wait "$launcher" && fail "the killed job exited 0"
"${mpi2[@]}" "$tlm" "${long[@]}" --resume k9 >resume9.txt 2>&1 || fail "--resume after kill -9 failed"
grep -q "resuming k9 at step" resume9.txt || fail "the killed run did not resume from a checkpoint"
cmp -s straight/model.safetensors k9/model.safetensors || fail "the run resumed after kill -9 differs"

# --- the benchmarks of part 3: bench allreduce checks its sums are exact before it times them;
# bench train's data-parallel step starts from the loss of one process's and times its sums
"${mpi2[@]}" "$tlm" bench allreduce --configs tiny --repeat 1 --json ar.json >ar.txt 2>&1 || { cat ar.txt; fail "bench allreduce failed"; }
bench=(bench train --config tiny --batch 5 --seq 32 --steps 2 --warmup 0 --threads 1)
"${mpi2[@]}" "$tlm" "${bench[@]}" --json bt2.json >bt2.txt 2>&1 || { cat bt2.txt; fail "bench train on 2 ranks failed"; }
"$tlm" "${bench[@]}" --json bt1.json >/dev/null || fail "bench train failed"
grep -q "summing gradients over the ranks" bt2.txt || fail "bench train does not report the time summing"
"${mpi2[@]}" "$tlm" "${bench[@]}" --overlap-grads --json bt2o.json >bt2o.txt 2>&1 ||
  { cat bt2o.txt; fail "bench train --overlap-grads on 2 ranks failed"; }
grep -q "waiting after backward for the gradient sum" bt2o.txt || fail "bench train --overlap-grads reports no wait"
[ "$(json bt2o.json "d['overlap_grads']")" = True ] || fail "the bench JSON does not record --overlap-grads"
[ "$(grep -c "tlm bench train" bt2.txt)" = 1 ] || fail "more than one rank reported"
"${mpi2[@]}" "$tlm" "${bench[@]}" --task cls --json bt2c.json >bt2c.txt 2>&1 ||
  { cat bt2c.txt; fail "bench train --task cls on 2 ranks failed"; }
$py - <<'PY' || fail "the benchmarks under mpirun disagree"
import json
ar, b1, b2 = (json.load(open(f)) for f in ("ar.json", "bt1.json", "bt2.json"))
# pre-training sums every gradient value (the tied decoder writes every word row), and so does
# --overlap-grads; a classifier's step only the word rows some rank looked up (here at most 160 of
# tiny's 30,522, whose table is most of its parameters)
b2o, b2c = json.load(open("bt2o.json")), json.load(open("bt2c.json"))
assert b2["gradient_values_summed_per_step"] == b2["params"], (b2["gradient_values_summed_per_step"], b2["params"])
assert b2o["gradient_values_summed_per_step"] == b2o["params"], b2o["gradient_values_summed_per_step"]
assert 0 < b2c["gradient_values_summed_per_step"] < 0.5 * b2c["params"], (b2c["gradient_values_summed_per_step"], b2c["params"])
assert b1["gradient_values_summed_per_step"] == 0, b1["gradient_values_summed_per_step"]
assert ar["ranks"] == 2 and ar["sizes"][0]["values"] == b1["params"], (ar, b1["params"])
assert ar["sizes"][0]["tlm_sum_ms"] > 0 and ar["sizes"][0]["mpi_allreduce_ms"] > 0
assert b2["ranks"] == 2 and b1["ranks"] == 1 and b2["comm_ms_per_step"] > 0 and b1["comm_ms_per_step"] == 0
assert abs(b1["first_loss"] - b2["first_loss"]) <= 1e-6 * b1["first_loss"], (b1["first_loss"], b2["first_loss"])
PY
expect_error "start it with mpirun" "$tlm" bench allreduce --configs tiny

# --- what does not run data-parallel is refused, naming why
expect_mpi_error() {  # expect_mpi_error "message" args...
  local msg=$1
  shift
  if "${mpi2[@]}" "$@" >err.txt 2>&1; then fail "not refused: $*"; fi
  grep -qF "$msg" err.txt || { cat err.txt; fail "expected \"$msg\" for: $*"; }
}
expect_mpi_error "only \`tlm pretrain\` and \`tlm finetune\`" "$tlm" vocab train --corpus corpus.txt --size 300 --out x
expect_mpi_error "run \`tlm bench\` as one process" "$tlm" bench latency --help
expect_mpi_error "convolutional front-end does not train data-parallel" "$tlm" "${pre[@]}" --layers 1 \
  --conv-layers 1 --conv-kernel 3 --conv-channels 4 --max-steps 2 --out conv
# ranks whose CPUs resolve --precision auto differently (one capped below AVX512_BF16) are refused,
# where this CPU computes bf16 natively (elsewhere both resolve to fp32 and agree)
auto_pre=("${pre_any[@]}" --precision auto --max-steps 2)
if "$tlm" "${auto_pre[@]}" --out auto_probe 2>&1 >/dev/null | grep -q "auto precision: bf16"; then
  if mpirun -n 1 --oversubscribe --bind-to none env TLM_MAX_CPU_ISA=avx2 "$tlm" "${auto_pre[@]}" --out mixed : \
    -n 1 --oversubscribe --bind-to none "$tlm" "${auto_pre[@]}" --out mixed >err.txt 2>&1; then
    fail "ranks that resolved auto to fp32 and bf16 trained together"
  fi
  grep -qF "the ranks resolved --precision auto differently" err.txt || { cat err.txt; fail "mixed precisions: no clear message"; }
  [ ! -e mixed/model.safetensors ] || fail "a refused mixed-precision job wrote a model"
fi
[ ! -e x ] || fail "a refused vocab train wrote its output"
[ ! -e conv ] || fail "a refused data-parallel run made its folder"
echo "data-parallel training under mpirun: all checks passed"
