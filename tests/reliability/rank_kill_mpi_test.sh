#!/usr/bin/env bash
# Rank failure (MPI): a rank process SIGKILLed in the middle of a save, and
# of a load, under mpirun -np 4. Open MPI 4.1 cannot keep the survivors
# alive, so the job must end: non-zero exit within 60 s, a message naming the
# dead rank, no process of the program left waiting; and the checkpoint the
# killed save was replacing must still hold the old generation.
# usage: rank_kill_mpi_test.sh <mpiexec> <program> [mpirun flags...]
set -u
mpiexec=$1
program=$2
shift 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
out=$(mktemp)
trap 'rm -rf "$dir" "$out"' EXIT
failed=0
check() {  # check <description> <command...>
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failed=1; fi
}

run_case() {  # run_case <mode> <victim>
  local mode=$1 victim=$2 start rc elapsed left pattern
  shift 2
  start=$(date +%s)
  timeout --kill-after=5 90 "$mpiexec" -np 4 "$@" "$program" "$mode" "$dir/ckpt" "$victim" >"$out" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - start))
  echo "---- $mode, rank $victim killed: mpirun exit $rc after ${elapsed}s ----"
  cat "$out"
  echo "----"
  check "$mode: mpirun exits non-zero" test "$rc" -ne 0
  # mpirun itself exits 137 (the dead rank's SIGKILL); the guard's mark is 124 or a 90 s run.
  check "$mode: mpirun was not stopped by the 90 s guard" test "$rc" -ne 124 -a "$elapsed" -lt 90
  check "$mode: the job ended within 60 s" test "$elapsed" -le 60
  check "$mode: the output names the dead rank $victim" grep -Eq "rank $victim( |\b).*(signal 9|Killed|killed)|process rank $victim" "$out"
  check "$mode: no rank reports success" bash -c "! grep -q 'completed although' '$out'"
  pattern="^$program( |\$)"
  left=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=$(pgrep -f -- "$pattern" || true)
    [ -z "$left" ] && break
    sleep 1
  done
  check "$mode: no process of the program left waiting" test -z "$left"
  if [ -n "$left" ]; then
    ps -o pid,etime,args -p $left
    kill -9 $left 2>/dev/null  # processes this script started
  fi
}

run_case save 2 "$@"
check "the killed save left the old checkpoint intact" "$program" check "$dir/ckpt"
run_case load 1 "$@"
check "the killed load left the checkpoint intact" "$program" check "$dir/ckpt"
exit $failed
