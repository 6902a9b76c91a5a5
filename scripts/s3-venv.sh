#!/usr/bin/env bash
# Creates (once) the virtual environment the S3 tests and the S3 benchmark
# use, outside the repository: moto's S3-compatible server (the tests start
# it on the loopback) and boto3 (botocore's signer to check dcpp's against;
# the transfer manager the benchmark compares with). From PyPI; idempotent.
#   s3-venv.sh <venv dir>
set -euo pipefail
venv=$1
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import moto.server, boto3, botocore" 2>/dev/null; then
  exit 0
fi
echo "s3-venv: creating $venv (moto[server], boto3 from PyPI)"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "moto[server]>=5.0" "boto3>=1.34"
