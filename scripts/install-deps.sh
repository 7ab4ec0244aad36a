#!/usr/bin/env bash
# Installs the Debian packages tlm needs, only those that are missing.
# Usage: scripts/install-deps.sh        (run as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev    # BLAS: the OpenMP build, so it does not fight our OpenMP threads
  libdnnl-dev               # oneDNN: bf16 GEMMs (AVX512_BF16 / AMX); OpenMP threading like OpenBLAS
  nlohmann-json3-dev        # JSON (config.json, safetensors headers, metrics)
  libcli11-dev              # command-line parsing
  libfmt-dev                # formatting (g++ 12 has no <format>)
  zlib1g-dev                # gzip-transparent readers
  libutf8proc-dev           # Unicode normalisation for the tokenizer
  libxxhash-dev             # content hashes of sources (token-shard cache keys)
  libtomlplusplus-dev       # TOML run configuration files
  libcpp-httplib-dev        # HTTP server (tlm serve)
  libonnx-dev libprotobuf-dev # ONNX's schema and checker (tlm export --format onnx)
  libgtest-dev libgmock-dev # unit tests
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  python3-torch python3-numpy # the PyTorch mirror (golden fixtures, benchmarks)
  libopenmpi-dev openmpi-bin # MPI: data-parallel training under mpirun (optional at build time)
  fasttext                  # the practitioner's baseline beside the tiny models (tlm fasttext, [fasttext] in plans)
  chromium python3-pil      # the report rendered and screenshotted in a test (scripts/report_screenshot.py)
  # the embedded default data (tlm data embedded)
  dict-gcide dict-foldoc bible-kjv bible-kjv-text wordnet-base fortunes fortunes-min
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test oracle: the real Hugging Face tokenizers (Rust, prebuilt inside the npm package),
# pinned by ref/hf-oracle/package-lock.json.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -d "$root/ref/hf-oracle/node_modules/tokenizers" ]; then
  echo "install-deps: installing the npm test oracle (ref/hf-oracle)"
  (cd "$root/ref/hf-oracle" && npm ci --no-audit --no-fund --loglevel=error)
fi
# Browser checks: puppeteer-core drives Debian's chromium (no browser download; --ignore-scripts),
# pinned by tests/web/package-lock.json.
if [ ! -d "$root/tests/web/node_modules/puppeteer-core" ]; then
  echo "install-deps: installing the browser test driver (tests/web)"
  (cd "$root/tests/web" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# Export checks: Hugging Face's transformers.js and onnxruntime-node (CPU binaries inside the
# package; its install script reaches outside the registries, hence --ignore-scripts), pinned by
# tests/onnx/package-lock.json.
if [ ! -d "$root/tests/onnx/node_modules/@huggingface/transformers" ]; then
  echo "install-deps: installing the ONNX consumers (tests/onnx)"
  (cd "$root/tests/onnx" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
