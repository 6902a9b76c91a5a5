#!/usr/bin/env bash
# `make interop`: dcpp against real PyTorch. Creates (or reuses) a virtual
# environment outside the repository with CPU PyTorch and safetensors from
# PyPI, builds the interop tool and tests, and runs run_interop.py; then the
# dcpp.torch tests (python/tests/torch_dcp: dcpp as DCP's storage, on gloo
# ranks), with the Python module built into BUILD_DIR.
# Usage: scripts/interop/run.sh BUILD_DIR JOBS
set -euo pipefail
build=${1:-build}
jobs=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
venv=${DCPP_TORCH_VENV:-$HOME/.cache/dcpp/torch-venv}
# Which PyTorch: a pip requirement in DCPP_TORCH_SPEC, e.g. 'torch==2.4.*'
# (with numpy<2 for 2.4) in its own DCPP_TORCH_VENV. Default: the newest on PyPI.
bash "$here/torch-venv.sh" "$venv"
# A build configured without the module (no bindings venv) gets it, built
# with this venv's Python; one that has it keeps its own (both venvs come from
# the system python3, so either interpreter imports the module).
if ! grep -q '^DCPP_BUILD_PYTHON:BOOL=ON' "$build/CMakeCache.txt"; then
  cmake -S "$here/../.." -B "$build" -DDCPP_BUILD_PYTHON=ON -DPython_EXECUTABLE="$venv/bin/python" > /dev/null
fi
cmake --build "$build" --target dcpp_interop_tool test_interop dcpp_python dcpp_cli -j "$jobs"
work=$(mktemp -d "${TMPDIR:-/tmp}/dcpp-interop.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -W ignore "$here/run_interop.py" --tool "$build/tests/dcpp_interop_tool" --work "$work/run" ${DCPP_INTEROP_FIXTURES:+--fixtures "$DCPP_INTEROP_FIXTURES"}
(cd "$build" && ctest -R "^interop_" --output-on-failure)
build_abs=$(cd "$build" && pwd)
(cd "$work" && DCPP_TORCH_TESTS=1 PYTHONPATH="$build_abs/python" DCPP_CLI="$build_abs/dcpp" \
  "$venv/bin/python" -W ignore -m pytest -q -p no:cacheprovider "$here/../../python/tests/torch_dcp")
