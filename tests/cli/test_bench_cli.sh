#!/usr/bin/env bash
# End-to-end checks of `tlm bench train` through the real binary: output, JSON, bad input.
# Usage: test_bench_cli.sh path/to/tlm
set -euo pipefail
tlm="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A short real run writes sane JSON.
"$tlm" bench train --config tiny --task cls --batch 4 --seq 32 --steps 2 --warmup 0 --threads 1 \
  --json "$work/r.json" >"$work/out.txt"
grep -q "tokens/s" "$work/out.txt" || fail "no tokens/s line"
grep -q "MFU" "$work/out.txt" || fail "no MFU"
/usr/bin/python3 - "$work/r.json" <<'PY' || fail "bad JSON result"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["config"] == "tiny" and r["task"] == "cls" and r["batch"] == 4 and r["seq_len"] == 32
assert r["tokens_per_s"] > 0 and r["ms_per_step"] > 0 and 0 < r["mfu"] < 2
assert r["gemm_ceiling_gflops"] > 1
# MFU is against the mean of the ceilings measured before and after the steps
before, after = r["gemm_ceiling_before_gflops"], r["gemm_ceiling_after_gflops"]
assert before > 1 and after > 1 and abs(r["gemm_ceiling_gflops"] - (before + after) / 2) <= 1e-9 * r["gemm_ceiling_gflops"]
assert abs(r["mfu"] - r["gflops"] / r["gemm_ceiling_gflops"]) <= 1e-9 * r["mfu"]
assert r["last_layer_absorbed"] is True  # a classifier's last layer always absorbs on the CPU
PY
grep -q "before the steps" "$work/out.txt" || fail "the two ceilings are not printed"
grep -q "last layer: keys and values absorbed" "$work/out.txt" || fail "the last layer's path is not printed"

expect_error() {  # expect_error "message fragment" args...
  local want="$1"; shift
  if "$tlm" "$@" >"$work/o" 2>"$work/e"; then fail "'$*' succeeded, expected an error"; fi
  grep -qF -- "$want" "$work/e" || { cat "$work/e" >&2; fail "'$*': message lacks '$want'"; }
}
expect_error 'unknown model config "huge"' bench train --config huge
expect_error "--task must be mlm or cls" bench train --config tiny --task nsp --steps 1
printf '{"model_type": "bert", "hidden_size": 100, "num_attention_heads": 3}' >"$work/bad.json"
expect_error "hidden_size = 100 is not divisible by num_attention_heads = 3" bench train --config "$work/bad.json"
expect_error "bad.json" bench train --config "$work/bad.json"
printf '{"hidden_size": 64,' >"$work/broken.json"
expect_error "invalid JSON" bench train --config "$work/broken.json"
expect_error "--seq 600 must be in 3..512" bench train --config tiny --seq 600 --steps 1
echo "bench CLI: all checks passed"
