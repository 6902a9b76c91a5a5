#!/usr/bin/env bash
# Runs every libFuzzer target of a DCPP_FUZZ build for a bounded time, each
# from a scratch copy of its seed corpus (fuzz/corpus/<name>; the committed
# corpus is never modified), and prints the executions per target.
# usage: run_fuzz.sh <fuzz build dir> <seconds per target>
#
# Caps, each a finding when exceeded (libFuzzer stops and saves the input
# under <build>/fuzz-work/artifacts/):
#   input size           64 KiB            (-max_len)
#   time per input       10 s = a hang      (-timeout)
#   one allocation       64 MiB            (-malloc_limit_mb): no parser may
#                        allocate more than that for an input of at most 64 KiB
#   resident memory      1 GiB             (-rss_limit_mb)
# plus AddressSanitizer and UndefinedBehaviorSanitizer on every execution.
set -u
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$build/fuzz-work
rm -rf "$work"
mkdir -p "$work/artifacts"
status=0
total=0
summary=""
for bin in "$build"/fuzz/fuzz_*; do
  name=$(basename "$bin")
  case $name in *_replay|fuzz_make_corpus) continue ;; esac
  [ -x "$bin" ] || continue
  target=${name#fuzz_}
  corpus=$work/corpus-$target
  mkdir -p "$corpus"
  cp -r "$here/corpus/$target/." "$corpus/" 2>/dev/null
  log=$work/$target.log
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$bin" "$corpus" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -malloc_limit_mb=64 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$target-" >"$log" 2>&1
  rc=$?
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  execs=${execs:-0}
  total=$((total + execs))
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    status=1
    echo "FAILED: $target (exit $rc) after $execs executions; the end of its log:"
    tail -40 "$log"
  fi
  summary+=$(printf '%-22s %10s executions in %ss, %s, exit %s' "$target" "$execs" "$seconds" "${cov:-cov: ?}" "$rc")$'\n'
done
echo "---- fuzzing summary ----"
printf '%s' "$summary"
echo "total: $total executions; findings saved in $work/artifacts: $(ls "$work/artifacts" | wc -l)"
exit $status
