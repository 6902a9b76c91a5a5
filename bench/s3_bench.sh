#!/usr/bin/env bash
# `make bench-s3`: starts moto's S3-compatible server on the loopback (the
# tests' tests/s3/s3_server.py, moto from the venv of scripts/s3-venv.sh),
# runs `dcpp bench --dir s3://dcpp-test/bench` against it with boto3's
# transfer manager beside it, and stops the server.
#   s3_bench.sh <dcpp binary> <venv> [dcpp bench options...]
set -euo pipefail
dcpp=$1
venv=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d)/s3-server.state
python3 "$here/../tests/s3/s3_server.py" start "$state" "$venv"
trap 'python3 "$here/../tests/s3/s3_server.py" stop "$state"' EXIT
if grep -q '^skip' "$state"; then
  echo "bench-s3: $(cat "$state")" >&2
  exit 1
fi
export AWS_ENDPOINT_URL=$(awk '/^endpoint/{print $2}' "$state")
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export DCPP_S3_PYTHON="$venv/bin/python"
"$dcpp" bench --dir s3://dcpp-test/bench "$@"
