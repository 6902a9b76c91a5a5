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
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy" 2>/dev/null; then
  "$venv/bin/pip" install --quiet torch safetensors numpy
fi
cmake --build "$build" --target dcpp_interop_tool test_interop -j "$jobs"
work=$(mktemp -d "${TMPDIR:-/tmp}/dcpp-interop.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -W ignore "$here/run_interop.py" --tool "$build/tests/dcpp_interop_tool" --work "$work/run" ${DCPP_INTEROP_FIXTURES:+--fixtures "$DCPP_INTEROP_FIXTURES"}
(cd "$build" && ctest -R interop --output-on-failure)
