#!/usr/bin/env bash
# The CUDA back end's checks on a GPU machine, prepared here and run there. On an H200
# (2026-11-30) `run tests` took ~40 s, `run bench` ~20 s, `run profile` ~15 s and `run paper`
# (--scale 0.01) 62 s, plus ~30 s to start a machine per call: one session's 15 minutes hold all.
#
#   scripts/gpu-check.sh bundle       here: builds the CUDA build (make cuda) and packs tlm, the
#                                     test binary and the shared libraries a bare CUDA image lacks
#                                     (OpenBLAS, oneDNN, fmt, ...) into .gpu/bundle.tar.gz
#                                     (git-ignored; carry `.gpu`). cuBLAS is not packed (500 MB):
#                                     the GPU machine's own CUDA 13 copy is used.
#   scripts/gpu-check.sh run tests    there, from the repository root: (1) every op against the
#                                     CPU back end, then the attention ones under
#                                     compute-sanitizer's memcheck, (2) the wide golden fixtures
#                                     made by the PyTorch mirror there, (3) the golden suite on
#                                     the GPU, (4) tests/cli/test_cuda.sh (50-step trajectory,
#                                     determinism, bf16, predict, latency).
#   scripts/gpu-check.sh run profile  there: one bert6 bf16 step under Nsight Compute, kernel
#                                     times summed by name (scripts/kernel_times.py).
#   scripts/gpu-check.sh run bench    there: bench train on the paper's BERT-6 and BERT-1 (bf16
#                                     and fp32, batch 256 x 128) against cuBLAS's GEMM ceiling
#                                     measured in the same run.
#   scripts/gpu-check.sh data         here: copies ../shared/data to .gpu-data (48 MB: with the
#                                     35 MB bundle over the 64 MiB a call carries, so it goes in
#                                     a call of its own, carry [".gpu-data"], to the machine that
#                                     is still warm from the last call and so still holds .gpu).
#   scripts/gpu-check.sh run paper    there: the paper preset at --scale 0.01 on the GPU (bf16).
# Each stage has its own time limit; the log goes to $OUT/gpu-check-<part>.log when OUT is set.
# Exit status: the number of failed stages (0: all passed).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bundle() {
  make cuda || exit 1
  local b=build-cuda stage=.gpu/stage
  rm -rf .gpu/stage .gpu/bundle.tar.gz
  mkdir -p "$stage/lib" "$stage/bin"
  cp "$b/tlm" "$b/tests/tlm_tests" "$stage/bin/"
  # Every shared library either binary needs, but glibc's own (the GPU image has a newer glibc)
  # and CUDA's (the image's toolkit and PyTorch carry cuBLAS 13).
  ldd "$b/tlm" "$b/tests/tlm_tests" | awk '/=> \//{print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libcublas|libcublasLt|libcudart)\.so' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  tar -C "$stage" -czf .gpu/bundle.tar.gz .
  rm -rf "$stage"
  echo "bundle: .gpu/bundle.tar.gz, $(du -h .gpu/bundle.tar.gz | cut -f1) (the device tool carries 64 MiB at most)"
  echo "on the GPU machine: scripts/gpu-check.sh run   (carry: .gpu)"
}

# The folder holding libcublas.so.13 on the GPU machine: its CUDA toolkit, else a Python package.
find_cublas() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }
  done
  find / -xdev -name 'libcublas.so.13' -print -quit 2>/dev/null | xargs -r dirname
}

run() {
  local part=$1 g=/tmp/tlm-gpu failed=0
  exec > >(tee "${OUT:-/tmp}/gpu-check-$part.log") 2>&1
  [ -f .gpu/bundle.tar.gz ] || { echo "no .gpu/bundle.tar.gz: run scripts/gpu-check.sh bundle here first"; exit 1; }
  rm -rf "$g" && mkdir -p "$g/golden" && tar -C "$g" -xzf .gpu/bundle.tar.gz
  local cublas
  cublas=$(find_cublas)
  [ -n "$cublas" ] || { echo "no libcublas.so.13 on this machine"; exit 1; }
  # The packed libraries only for tlm's binaries (wrappers): the image's Python and PyTorch keep
  # their own, newer libstdc++.
  local exe
  for exe in tlm tlm_tests; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib:%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/bin/%s" "$@"\n' \
      "$g" "$cublas" "$g" "$exe" >"$g/$exe"
    chmod +x "$g/$exe"
  done
  export TLM_TEST_SOURCE_DIR="$root" TLM_TEST_BINARY_DIR="$g" TLM_TEST_PYTHON="$(command -v python3)"
  nvidia-smi -L
  echo "cuBLAS from $cublas; $(nproc) cores"
  stage() {  # stage NAME SECONDS command...
    local name=$1 limit=$2 t0=$SECONDS
    shift 2
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    local rc=$?
    if [ "$rc" = 0 ]; then
      echo "=== $name: passed in $((SECONDS - t0)) s"
    else  # 77 (skipped) counts too: on a GPU machine everything must run
      echo "=== $name: FAILED (status $rc$([ "$rc" = 124 ] && echo ', time limit')) after $((SECONDS - t0)) s"
      failed=$((failed + 1))
    fi
  }
  case "$part" in
    tests)
      # First: the GPU is usable (else every test below would skip and pass).
      stage "a training step on the GPU" 60 "$g/tlm" bench train --device cuda --config tiny --steps 2
      stage "op parity against the CPU" 90 "$g/tlm_tests" --gtest_filter='CudaOps.*:Device.*' --gtest_brief=1
      stage "memcheck of the attention kernels (compute-sanitizer)" 120 compute-sanitizer --tool memcheck \
        --error-exitcode 1 "$g/tlm_tests" --gtest_filter='CudaOps.Attention*' --gtest_brief=1
      stage "wide golden fixtures (PyTorch)" 120 python3 ref/make_golden.py --preset wide --out "$g/golden" \
        --precision both
      stage "golden suite on the GPU" 60 "$g/tlm_tests" --gtest_filter='*GoldenTest*cuda*' --gtest_brief=1
      stage "CLI: trajectory, determinism, bf16, predict, latency" 180 tests/cli/test_cuda.sh "$g/tlm"
      ;;
    bench)
      for config in bert6 bert1; do
        for precision in bf16 fp32; do
          stage "bench train $config $precision" 45 "$g/tlm" bench train --device cuda --config "$config" \
            --precision "$precision" --batch 256 --seq 128 --steps 20 --warmup 3 \
            --json "${OUT:-/tmp}/bench-$config-$precision.json"
        done
      done
      ;;
    profile)
      # Where a step's GPU time goes: every kernel of one bert6 bf16 step timed by Nsight Compute
      # (one metric, so one replay each; clocks left alone), summed by kernel name.
      local csv="${OUT:-/tmp}/profile-bert6-bf16.csv"
      stage "Nsight Compute over one bert6 bf16 step" 240 ncu --clock-control none --metrics gpu__time_duration.sum \
        --csv --page raw --log-file "$csv" "$g/tlm" bench train --device cuda --config bert6 --precision bf16 \
        --batch 256 --seq 128 --steps 1 --warmup 0
      python3 scripts/kernel_times.py "$csv"
      ;;
    paper)
      [ -d .gpu-data ] || { echo "no .gpu-data: run scripts/gpu-check.sh data here and carry it"; exit 1; }
      stage "paper preset at --scale 0.01" 540 "$g/tlm" reproduce --preset paper --data-dir .gpu-data \
        --scale 0.01 --device cuda --precision bf16 --out /tmp/paper-gpu
      ;;
    *) echo "run what? tests, bench, profile or paper"; exit 2 ;;
  esac
  echo "gpu-check $part: $failed stage(s) failed"
  exit "$failed"
}

data() {
  [ -d ../shared/data ] || { echo "no ../shared/data here"; exit 1; }
  rm -rf .gpu-data && cp -r ../shared/data .gpu-data
  echo "data: .gpu-data, $(du -sh .gpu-data | cut -f1) (carry [\".gpu-data\"] in a call of its own)"
}

case "${1:-}" in
  bundle) bundle ;;
  data) data ;;
  run) run "${2:-}" ;;
  *) sed -n '2,28p' "$0"; exit 2 ;;
esac
