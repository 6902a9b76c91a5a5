#!/usr/bin/env bash
# Runs mpi_failure_main under mpirun -np 3 and checks that a failing or a
# silent rank ends the whole job: non-zero exit within 30 s, stderr naming
# the rank and the cause, and no process of the program left running.
# usage: mpi_failure_test.sh <mpiexec> <program> fail|stop [mpirun flags...]
set -u
mpiexec=$1
program=$2
mode=$3
shift 3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

case $mode in
  fail) timeout_ms=10000 ;;  # long: the abort must come from fail(), not the deadline
  stop) timeout_ms=1000 ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

err=$(mktemp)
trap 'rm -f "$err"' EXIT
start=$(date +%s)
timeout --kill-after=5 60 "$mpiexec" -np 3 "$@" "$program" "$mode" "$timeout_ms" 2>"$err"
rc=$?
elapsed=$(($(date +%s) - start))
echo "---- stderr of mpirun (exit $rc after ${elapsed}s) ----"
cat "$err"
echo "----"

failed=0
check() {  # check <condition-description> <command...>
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failed=1; fi
}
check "mpirun exits non-zero" test "$rc" -ne 0
check "mpirun was not killed by the 60 s guard" test "$rc" -ne 124 -a "$rc" -ne 137
check "the job ended within 30 s" test "$elapsed" -le 30
case $mode in
  fail)
    check "stderr names rank 1 and the cause" grep -q "dcpp: rank 1: injected" "$err"
    check "the abort came from fail(), not a deadline" bash -c "! grep -q 'timed out' '$err'"
    ;;
  stop)
    check "stderr names a waiting rank, the collective and the timeout" \
      grep -Eq "dcpp: rank [02]: (all_reduce|barrier) timed out after 1 s" "$err"
    ;;
esac

# No process of the program may survive the job. Match command lines that
# start with the program's path (not this script, whose arguments hold it).
pattern="^$program( |\$)"
left=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
  left=$(pgrep -f -- "$pattern" || true)
  [ -z "$left" ] && break
  sleep 1
done
check "no process of $program left running" test -z "$left"
if [ -n "$left" ]; then
  ps -o pid,etime,args -p $left
  kill -9 $left 2>/dev/null  # these are the processes this script started
fi
exit $failed
