#!/usr/bin/env bash
# Device checks on a GPU machine: builds dcpp with CUDA required
# (-DDCPP_WITH_CUDA=ON) in its own build folder and runs the GPU unit tests,
# which must all run (a skipped GPU test fails this script), then the CPU
# suites that a present GPU changes (devices, staging, dtensor, tp, the
# seed's checkpoint tests), and prints a summary. Fails loudly, before
# building, when no GPU is visible. Under 8 minutes on one H200 with 16 cores.
#
#   scripts/device-check.sh            # BUILD=build-device JOBS=$(nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-device}
JOBS=${JOBS:-$(nproc)}
LOG_DIR=$BUILD/device-check
start=$(date +%s)

fail() { echo "device-check: FAIL: $*" >&2; exit 1; }

echo "== GPUs"
if ! command -v nvidia-smi > /dev/null; then fail "nvidia-smi not found: this is not a GPU machine"; fi
gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
nvidia-smi -L || true
[ "$gpus" -ge 1 ] || fail "no GPU visible to nvidia-smi"

echo "== configure and build ($BUILD, CUDA required)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDCPP_WITH_CUDA=ON -DDCPP_BUILD_BENCH=OFF \
  -DDCPP_BUILD_TOOLS=OFF -DDCPP_BUILD_PYTHON=OFF > /dev/null
cmake --build "$BUILD" --target test_tensor test_io test_dtensor test_tp test_checkpoint -j "$JOBS" > /dev/null
mkdir -p "$LOG_DIR"

# The GPU unit tests: every one must run on this machine.
gpu_tests='tensor_Cuda\.|io_StagingCuda\.|checkpoint_Cuda\.'
echo "== GPU unit tests ($gpu_tests)"
gpu_rc=0
(cd "$BUILD" && ctest -R "$gpu_tests" --output-on-failure -j "$JOBS") > "$LOG_DIR/gpu.log" 2>&1 || gpu_rc=$?
cat "$LOG_DIR/gpu.log"
gpu_ran=$(grep -cE 'Test +#[0-9]+: ' "$LOG_DIR/gpu.log" || true)
gpu_skipped=$(grep -c 'Skipped' "$LOG_DIR/gpu.log" || true)

# The CPU suites a present GPU changes ("cuda" meshes, device parsing,
# staging with the host double), and the seed's tensor-parallel tests.
cpu_tests='tensor_|io_Staging|dtensor|tp_|TestTpCheckpoint|checkpoint_'
echo "== CPU suites next to the GPU ($cpu_tests, excluding MPI)"
cpu_rc=0
(cd "$BUILD" && ctest -R "$cpu_tests" -E "_mpi_np|$gpu_tests" --output-on-failure -j "$JOBS") \
  > "$LOG_DIR/cpu.log" 2>&1 || cpu_rc=$?
tail -n 25 "$LOG_DIR/cpu.log"

end=$(date +%s)
echo "== summary"
echo "GPUs visible:          $gpus"
echo "GPU unit tests:        $gpu_ran run, $gpu_skipped skipped, ctest exit $gpu_rc"
echo "CPU suites:            $(grep -E 'tests passed' "$LOG_DIR/cpu.log" || echo '?'), ctest exit $cpu_rc"
echo "not yet device-checked: TP on CUDA tensors, NCCL, save/load from device, dcpp bench --device cuda"
echo "time:                  $((end - start)) s (logs in $LOG_DIR)"
[ "$gpu_ran" -ge 1 ] || fail "no GPU unit test ran"
[ "$gpu_skipped" -eq 0 ] || fail "$gpu_skipped GPU unit test(s) skipped on a GPU machine"
[ "$gpu_rc" -eq 0 ] || fail "GPU unit tests failed"
[ "$cpu_rc" -eq 0 ] || fail "CPU suites failed"
echo "device-check: OK"
