#!/usr/bin/env bash
# Creates (once) the virtual environment the Python bindings build and test
# with, outside the repository: nanobind and scikit-build-core (building the
# module), NumPy and pytest (its tests). From PyPI; idempotent.
#   python-venv.sh <venv dir>
set -euo pipefail
venv=$1
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import nanobind, scikit_build_core, numpy, pytest" 2>/dev/null; then
  exit 0
fi
echo "python-venv: creating $venv (nanobind, scikit-build-core, numpy, pytest from PyPI)"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "nanobind>=2.0" "scikit-build-core>=0.10" numpy pytest
