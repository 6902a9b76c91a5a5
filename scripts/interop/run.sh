#!/usr/bin/env bash
# `make interop`: dcpp against real PyTorch. Creates (or reuses) a virtual
# environment outside the repository with CPU PyTorch and safetensors from
# PyPI, builds the interop tool and tests, and runs run_interop.py.
# Usage: scripts/interop/run.sh BUILD_DIR JOBS
set -euo pipefail
build=${1:-build}
jobs=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
venv=${DCPP_TORCH_VENV:-$HOME/.cache/dcpp/torch-venv}
# Which PyTorch: a pip requirement, e.g. 'torch==2.4.*' (with numpy<2 for
# 2.4) in its own DCPP_TORCH_VENV. Default: the newest on PyPI.
spec=${DCPP_TORCH_SPEC:-torch}
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy" 2>/dev/null; then
  read -r -a requirements <<< "$spec"
  "$venv/bin/pip" install --quiet "${requirements[@]}" safetensors numpy
fi
cmake --build "$build" --target dcpp_interop_tool test_interop -j "$jobs"
work=$(mktemp -d "${TMPDIR:-/tmp}/dcpp-interop.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -W ignore "$here/run_interop.py" --tool "$build/tests/dcpp_interop_tool" --work "$work/run" ${DCPP_INTEROP_FIXTURES:+--fixtures "$DCPP_INTEROP_FIXTURES"}
(cd "$build" && ctest -R "^interop_" --output-on-failure)
