# The two commands of the README: `make demo` and `make test`.
# Both install missing Debian packages, configure (Release), build what they
# need and run.
# `make test` runs the suite in the Release build, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer (test-asan), then a short
# libFuzzer smoke of every parser (fuzz-smoke). The sanitizer and fuzz builds
# are -O1, as the sanitizers recommend: at -O3 they compile 2.5x slower.
# test-tsan runs the thread-backend tests under ThreadSanitizer; fuzz fuzzes
# each parser longer.
# cmake --build runs make again: keep its "Entering directory" lines out of the output.
MAKEFLAGS += --no-print-directory
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# The Python bindings build and test with this venv (scripts/python-venv.sh,
# outside the repository); `make test` creates it, and every configure that
# finds it builds the module too.
PY_VENV ?= $(HOME)/.cache/dcpp/py-venv
# The S3 tests' server (moto) and boto3 (scripts/s3-venv.sh, outside the
# repository); `make test` creates it, the tests skip visibly without it.
S3_VENV ?= $(HOME)/.cache/dcpp/s3-venv
PYTHON_FLAGS = $(if $(wildcard $(PY_VENV)/bin/python),-DDCPP_BUILD_PYTHON=ON -DPython_EXECUTABLE=$(PY_VENV)/bin/python,-DDCPP_BUILD_PYTHON=OFF)
# Seconds of fuzzing per target: make fuzz, and make fuzz-smoke (part of make test).
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 15
# libFuzzer comes with clang (Debian: clang-14, libclang-rt-14-dev).
FUZZ_CC ?= clang-14
FUZZ_CXX ?= clang++-14
# The SIGKILL test's trials under ASan (50 in the Release run): the sanitized
# child is several times slower, and the Release run already makes the count.
ASAN_KILL_TRIALS ?= 12
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/tests/reliability/lsan.supp:print_suppressions=0

.PHONY: all deps configure build demo test test-release python-venv s3-venv python-package test-asan test-tsan fuzz fuzz-smoke fuzz-build bench \
        bench-peers bench-s3 bench-codec clean interop

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(PYTHON_FLAGS) -DDCPP_S3_VENV=$(S3_VENV) $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The demo needs the dcpp command only (the demo runs inside it), not the test suite.
demo: configure
	@cmake --build $(BUILD) --target dcpp_cli -j $(JOBS)
	@$(BUILD)/dcpp demo

test: test-release test-asan fuzz-smoke

python-venv:
	@bash scripts/python-venv.sh $(PY_VENV)

s3-venv:
	@bash scripts/s3-venv.sh $(S3_VENV)

# `pip install .` (scikit-build-core) into the bindings venv, then the binding
# tests against the installed package instead of the build tree.
python-package: python-venv build
	@$(PY_VENV)/bin/pip install --quiet --no-build-isolation .
	@$(BUILD)/tests/dump_checkpoint $(BUILD)/tests/storage_independent_reader > /dev/null
	@cd /tmp && DCPP_SOURCE_DIR=$(CURDIR) DCPP_CLI=$(CURDIR)/$(BUILD)/dcpp \
	  DCPP_DUMP_DIR=$(CURDIR)/$(BUILD)/tests/storage_independent_reader \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider $(CURDIR)/python/tests

test-release: python-venv s3-venv build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps s3-venv
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DDCPP_SANITIZE=ON \
	  -DDCPP_BUILD_BENCH=OFF -DDCPP_S3_VENV=$(S3_VENV) $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && $(SAN_ENV) DCPP_KILL_TRIALS=$(ASAN_KILL_TRIALS) ctest --output-on-failure -j $(JOBS)

# Thread-backend tests only: Open MPI is not built for ThreadSanitizer.
test-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DDCPP_WITH_MPI=OFF -DDCPP_BUILD_BENCH=OFF \
	  "-DCMAKE_CXX_FLAGS=-fsanitize=thread -g1" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS)
	@cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 DCPP_KILL_TRIALS=4 \
	  ctest --output-on-failure -j $(JOBS) -E 'fuzz_|independent_reader|dump_checkpoint'

# libFuzzer needs clang: a separate, fully instrumented build of the parsers.
fuzz-build: deps
	@CC=$(FUZZ_CC) CXX=$(FUZZ_CXX) cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DDCPP_FUZZ=ON \
	  -DDCPP_BUILD_BENCH=OFF $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD_FUZZ) --target fuzz_targets -j $(JOBS)

fuzz: fuzz-build
	@bash fuzz/run_fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@bash fuzz/run_fuzz.sh $(BUILD_FUZZ) $(FUZZ_SMOKE_SECONDS)

# `make bench`: the checkpoint benchmark (bench/README.md; BENCH_ARGS, e.g.
# "--layers 6 --ranks 2", passes options) and the planning benchmark.
BENCH_ARGS ?=
bench: build
	@$(BUILD)/dcpp bench $(BENCH_ARGS)
	@$(BUILD)/bench/planning_bench

# `make bench-s3`: `dcpp bench --dir s3://...` against moto's server on the
# loopback, beside boto3's transfer manager on the same bytes (S3_BENCH_ARGS
# passes options; the default moves 256 MiB: moto keeps objects in memory).
S3_BENCH_ARGS ?= --ranks 2 --layers 4 --hidden 2048 --runs 3
bench-s3: s3-venv build
	@bash bench/s3_bench.sh $(BUILD)/dcpp $(S3_VENV) $(S3_BENCH_ARGS)

# `make bench-peers`: PyTorch DCP and safetensors on the same shapes, ranks and
# disk, with a dcpp run before and after each peer group; prints dcpp's ratio
# to each peer (bench/README.md), and dcpp.torch (dcpp's storage under DCP,
# the module of this build) beside DCP's own. Installs PyTorch (CPU) and
# safetensors with pip into TORCH_VENV when they are missing.
TORCH_VENV ?= $(HOME)/.cache/dcpp/torch-venv
bench-peers: build
	@bash scripts/interop/torch-venv.sh $(TORCH_VENV)
	@$(TORCH_VENV)/bin/python bench/codec_peers.py --codec-bench $(BUILD)/bench/codec_bench --json $(BUILD)/bench-codec.json
	@PYTHONPATH=$(CURDIR)/$(BUILD)/python $(TORCH_VENV)/bin/python bench/peers_bench.py $(BENCH_ARGS) --dcpp $(BUILD)/dcpp --json $(BUILD)/bench-peers.json

# `make bench-codec`: only the codec comparison of bench-peers (dcpp's block
# codec, ZipNN, zstd 1 and 3 on real and random weights; bench/codec_peers.py).
bench-codec: build
	@bash scripts/interop/torch-venv.sh $(TORCH_VENV)
	@$(TORCH_VENV)/bin/python bench/codec_peers.py --codec-bench $(BUILD)/bench/codec_bench $(CODEC_ARGS) --json $(BUILD)/bench-codec.json

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)

# dcpp against real PyTorch (CPU wheels from PyPI in a venv outside the
# repository): PyTorch DCP and safetensors checkpoints both ways, and dcpp as
# DCP's storage (dcpp.torch) on gloo ranks.
# DCPP_INTEROP_FIXTURES=tests/data/interop refreshes the committed fixtures.
# The oldest supported PyTorch, in its own venv:
#   make interop TORCH_VENV=$HOME/.cache/dcpp/torch24-venv TORCH_SPEC='torch==2.4.* numpy<2'
TORCH_SPEC ?= torch
# The dcpp.torch tests (python/tests/torch_dcp) need the Python module: the
# build gets it with the bindings venv's Python, or the torch venv's without one.
INTEROP_PYTHON = $(if $(wildcard $(PY_VENV)/bin/python),$(PY_VENV),$(TORCH_VENV))/bin/python
interop: deps
	@DCPP_TORCH_SPEC='$(TORCH_SPEC)' bash scripts/interop/torch-venv.sh $(TORCH_VENV)
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDCPP_BUILD_PYTHON=ON -DPython_EXECUTABLE=$(INTEROP_PYTHON) $(CMAKE_FLAGS) > /dev/null
	@DCPP_TORCH_VENV=$(TORCH_VENV) DCPP_TORCH_SPEC='$(TORCH_SPEC)' bash scripts/interop/run.sh $(BUILD) $(JOBS)
