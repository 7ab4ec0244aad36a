#!/usr/bin/env bash
# --device cuda through the real binary, against the CPU (ctest label `cuda`, not in make test: it
# needs a CUDA build and a GPU; elsewhere it exits 77, skipped, saying why).
# - A 50-step pre-training trajectory with dropout and MLM masks (counter-based, so the same on
#   both devices): the CUDA losses and final weights against the CPU's. The tolerance is derived in
#   the same run: the CPU itself moved only by another GEMM summation order (oneDNN instead of
#   OpenBLAS) drifts by some amount over the same 50 steps; the GPU (another summation order
#   everywhere) must stay within 20x that drift, floored at 1e-5 (20x: the GPU reorders every
#   reduction, not only the GEMMs; both drifts are printed).
# - The same seed twice on the GPU: bit-identical weights (no atomics in any reduction).
# - bf16 on the GPU against the CPU's emulated bf16 (the same rounded operands): the same rule, the
#   reference drift being the CPU's bf16 summed in another order (3 OpenBLAS threads instead of 1).
# - Fine-tuning from the GPU's encoder on the GPU; predict --probs on the GPU against the CPU on
#   the same model within 1e-5; bench latency on the GPU; the convolutional front-end refused by name.
# Usage: test_cuda.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"

$py "$root/tests/experiment/make_mini_data.py" data
"$tlm" vocab train --corpus data/corpora/near.txt --size 300 --out vocab.txt >/dev/null
P=(--corpus data/corpora/near.txt --vocab vocab.txt --layers 2 --hidden 64 --heads 4 --max-len 32 --seq-mode chunk
   --batch 16 --sequences 800 --valid-sequences 50 --lr 1e-3 --max-steps 50 --log-every 1)
F=(--precision fp32)  # training's default is auto (bf16 on Ampere and later, and on a CPU with AVX512_BF16)

if ! "$tlm" pretrain "${P[@]}" --threads 1 --device cuda "${F[@]}" --out gpu1 >gpu1.log 2>&1; then
  if grep -q -E "no CUDA back end|no usable CUDA GPU" gpu1.log; then
    echo "SKIP: $(grep -o -E "no CUDA back end.*|no usable CUDA GPU.*" gpu1.log | head -1)"
    exit 77
  fi
  cat gpu1.log
  fail "pre-training on the GPU failed"
fi
"$tlm" pretrain "${P[@]}" --threads 1 --device cuda "${F[@]}" --out gpu2 >/dev/null 2>&1 || fail "the second GPU run failed"
"$tlm" pretrain "${P[@]}" --threads 1 "${F[@]}" --out cpu >/dev/null 2>&1 || fail "the CPU run failed"
TLM_CPU_GEMM=onednn "$tlm" pretrain "${P[@]}" --threads 1 "${F[@]}" --out cpu_onednn >/dev/null 2>&1 || fail "the oneDNN CPU run failed"
json gpu1/manifest.json "d['backend']" | grep -q "^cuda:0 fp32" || fail "the manifest does not name the CUDA back end"
cmp -s gpu1/model.safetensors gpu2/model.safetensors || fail "two GPU runs with one seed differ"

# compare A B REF_A REF_B WHAT: A vs B (losses at every step, final weights) within 20x the drift
# of REF_A vs REF_B, floored at 1e-5.
compare() {
  $py - "$@" <<'EOF' || fail "$5: the GPU is further from the CPU than the tolerance allows"
import json, struct, sys
import numpy as np

def weights(run):
    with open(f"{run}/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32)
    return out

def losses(run):
    rows = [json.loads(l) for l in open(f"{run}/log.jsonl")]
    return np.array([r["loss"] for r in rows if "loss" in r and "valid_mlm_loss" not in r])

def drift(x, y):
    wx, wy = weights(x), weights(y)
    # The attention key bias is left out: its gradient is zero in exact arithmetic (softmax is
    # shift-invariant), so it holds rounding noise that AdamW scales up to full-size steps.
    w = max(float(np.max(np.abs(wx[k] - wy[k]))) / max(float(np.max(np.abs(wy[k]))), 1e-30) for k in wy
            if not k.endswith("attention.self.key.bias"))
    lx, ly = losses(x), losses(y)
    assert len(lx) == len(ly) == 50, (len(lx), len(ly))
    l = float(np.max(np.abs(lx - ly) / np.abs(ly)))
    return w, l

a, b, ra, rb, what = sys.argv[1:6]
w, l = drift(a, b)
rw, rl = drift(ra, rb)
tw, tl = max(20 * rw, 1e-5), max(20 * rl, 1e-5)
print(f"{what}: weights {w:.3g} (tolerance {tw:.3g}; CPU summation-order drift {rw:.3g}), "
      f"losses {l:.3g} (tolerance {tl:.3g}; drift {rl:.3g})")
sys.exit(0 if w <= tw and l <= tl else 1)
EOF
}
compare gpu1 cpu cpu_onednn cpu "fp32, 50 steps"

"$tlm" pretrain "${P[@]}" --threads 1 --device cuda --precision bf16 --out gpu_bf16 >/dev/null 2>&1 || fail "bf16 on the GPU failed"
# the CPU's reference is the emulation on every CPU (the cap keeps a native-bf16 CPU off oneDNN)
emulate=(env TLM_MAX_CPU_ISA=avx512_core)
"${emulate[@]}" "$tlm" pretrain "${P[@]}" --threads 1 --precision bf16 --out cpu_bf16 >/dev/null 2>&1 ||
  fail "emulated bf16 on the CPU failed"
# bf16's own reference drift: the emulated GEMM's fp32 sums in OpenBLAS's 3-thread order (a
# reordering also flips some bf16 roundings downstream, as the GPU's does)
"${emulate[@]}" "$tlm" pretrain "${P[@]}" --precision bf16 --threads 3 --out cpu_bf16_t3 >/dev/null 2>&1 ||
  fail "emulated bf16 on 3 CPU threads failed"
json gpu_bf16/manifest.json "d['backend']" | grep -q "^cuda:0 bf16" || fail "bf16 was not used on the GPU"
compare gpu_bf16 cpu_bf16 cpu_bf16_t3 cpu_bf16 "bf16, 50 steps"

T=(--train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
   --per-label-train 20 --per-label-test 10 --max-len 32 --batch 8 --epochs 3 --lr 3e-3 --threads 1)
"$tlm" finetune "${T[@]}" --init gpu1 --device cuda "${F[@]}" --out ft >/dev/null 2>&1 ||
  fail "fine-tuning on the GPU failed"
head -50 data/task/test.csv | cut -d, -f2- >texts.txt
"$tlm" predict --model ft --probs --input texts.txt --device cuda --threads 1 >pred_gpu.jsonl
"$tlm" predict --model ft --probs --input texts.txt --threads 1 >pred_cpu.jsonl
$py - <<'EOF' || fail "predict on the GPU differs from the CPU"
import json
g = [json.loads(l) for l in open("pred_gpu.jsonl")]
c = [json.loads(l) for l in open("pred_cpu.jsonl")]
assert len(g) == len(c) == 50, (len(g), len(c))
worst = 0.0
for a, b in zip(g, c):
    assert a["label"] == b["label"] or abs(max(a["probs"].values()) - sorted(a["probs"].values())[-2]) < 1e-5
    worst = max(worst, max(abs(a["probs"][k] - b["probs"][k]) for k in b["probs"]))
print(f"predict: largest probability difference {worst:.3g} (tolerance 1e-5)")
assert worst <= 1e-5
EOF

"$tlm" bench latency --model ft --data data/task/test.csv --format csv --classes data/task/classes.txt --texts 50 \
  --device cuda --json latency.json >/dev/null 2>&1 || fail "bench latency on the GPU failed"
echo "latency on the GPU: $(json latency.json "d")" | head -c 600
echo

expect_error "runs on the CPU only" "$tlm" pretrain "${P[@]}" --device cuda --conv-layers 2 --conv-kernel 3 \
  --conv-channels 4 --out conv
[ ! -e conv ] || fail "a refused conv run left a folder"
echo "PASS"
