# The README's two commands: `make test` and `make demo`. Everything else is plain CMake.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test demo bench clean format fuzz cuda

all: build

deps:
	@scripts/install-deps.sh

# Unity build (eight sources per compiler run): the headers and templates are compiled once per
# batch, which halves a fresh build on 2 cores (5.5 -> 3.2 min). Plain `cmake` builds stay one
# file per run, so a missing #include still shows there.
configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The whole test suite (unit, golden vs PyTorch, CLI, a short fuzz run). Under 10 minutes on 2 cores:
# two tests at a time (no test times anything, so sharing the cores changes no result).
test: build
	@scripts/fuzz.sh 15
	@cd $(BUILD) && ctest --output-on-failure -j 2 -L unit

# The paper's four findings reproduced on the embedded Debian data (about 9 minutes on 2 Zen 4 cores in
# bf16, longer where bf16 is not native),
# ending with the path of the report. Rerunning skips what has finished; Ctrl-C stops cleanly and
# the next `make demo` continues.
DEMO_OUT ?= demo
demo: configure
	@cmake --build $(BUILD) -j $(JOBS) --target tlm
	@$(BUILD)/tlm reproduce --preset demo --out $(DEMO_OUT)

# The CUDA back end (--device cuda) in its own build folder: nvcc from /usr/local/cuda, Hopper
# (sm_90) plus PTX. Not part of make test or make demo; its GPU checks: scripts/gpu-check.sh.
CUDA_BUILD ?= build-cuda
cuda: deps
	@cmake -S . -B $(CUDA_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON -DTLM_CUDA=ON >/dev/null
	@cmake --build $(CUDA_BUILD) -j $(JOBS)

# A longer fuzz run.
fuzz: deps
	@scripts/fuzz.sh 300

# Throughput against the PyTorch baseline, side by side (see bench/README.md).
bench: build
	@/usr/bin/python3 bench/bench_vs_pytorch.py --tlm $(BUILD)/tlm

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	@rm -rf $(BUILD)
