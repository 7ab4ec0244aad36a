#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for N seconds from the
# seed corpora in fuzz/corpus. Any crash, sanitizer report or leak fails the run.
# Usage: scripts/fuzz.sh [seconds per target, default 15]
set -euo pipefail
seconds="${1:-15}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
CC=clang CXX=clang++ cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in tokenizer readers safetensors; do
  mkdir -p "$work/$target"
  cp "$root/fuzz/corpus/$target"/* "$work/$target/"
  if ! (cd "$work" && "$build/fuzz_$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        "$work/$target" >"$work/$target.log" 2>&1); then
    tail -40 "$work/$target.log"
    echo "fuzz: fuzz_$target found a failure (input saved in $work as crash-*; log above)"
    cp "$work"/crash-* "$root/" 2>/dev/null || true
    exit 1
  fi
  runs=$(grep -oE "Done [0-9]+ runs" "$work/$target.log" | grep -oE "[0-9]+" || echo "?")
  echo "fuzz: fuzz_$target: $runs runs in ${seconds}s, nothing found"
done
