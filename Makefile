# The two commands of the README: `make demo` and `make test`.
# Both install missing Debian packages, configure (Release), build and run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
MAKEFLAGS += --no-print-directory

.PHONY: all deps configure build demo test bench interop clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@$(BUILD)/dcpp demo

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	@$(BUILD)/bench/strided_copy_bench

# dcpp against real PyTorch (CPU wheels from PyPI in a venv outside the
# repository): PyTorch DCP and safetensors checkpoints both ways.
# DCPP_INTEROP_FIXTURES=tests/data/interop refreshes the committed fixtures.
interop: configure
	@bash scripts/interop/run.sh $(BUILD) $(JOBS)

clean:
	rm -rf $(BUILD)
