#!/usr/bin/env bash
# Scale: plan and apply over 1,000 users (one key and one SSM parameter
# each; two SSM targets and a verification per rotation) through a proxy
# adding LATENCY ms (default 20), and peak memory over 50 and 500 rotations
# in a row, to show that it stays flat. Exits non-zero when a rotation did
# not finish or peak memory over 500 rotations exceeds 1.5x that over 50
# (CI runs it).
#
#   [REKEY=BINARY] bench/scale.sh [LATENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
latency=${1:-20}
out=bench/out/scale
rm -rf "$out" && mkdir -p "$out"

source bench/lib.sh
# REKEY=path/to/rekey benchmarks another build (an older one, say).
rekey=${REKEY:-target/release/rekey}
[[ -n ${REKEY:-} ]] || cargo build --release --quiet
start_emulator
for group in 1000 50 500; do
  scripts/emulator python bench/plan-seed.py "$group" "/scale-$group/" 0 > /dev/null
done
start_proxy "$latency" "$out/calls.jsonl"

printf '\n%-24s %9s %8s %10s %8s  %s\n' run seconds calls calls/user "peak MB" result
measure() {
  local label=$1 users=$2; shift 2
  : > "$out/calls.jsonl"
  local start end
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$proxy /usr/bin/time -f '%M' -o "$out/rss" "$rekey" "$@" > "$out/last.log" || true
  end=$(date +%s%N)
  local calls result
  calls=$(wc -l < "$out/calls.jsonl")
  if [[ $1 == plan* ]]; then
    result=$(grep -E '^Plan:' "$out/last.log" || echo "no plan")
  else
    result="$(grep -c ': rotated:' "$out/last.log" || true) rotated, $(grep -c 'FAILED' "$out/last.log" || true) failed"
  fi
  peak[$users]=$(tail -n 1 "$out/rss")
  printf '%-24s %9.1f %8s %10.2f %8.1f  %s\n' "$label" "$(echo "($end - $start) / 1000000000" | bc -l)" "$calls" \
    "$(echo "$calls / $users" | bc -l)" "$(echo "$(tail -n 1 "$out/rss") / 1024" | bc -l)" "$result"
}
declare -A peak
workflow=bench/workflows/apply-100.yaml
measure "plan, 1000 users" 1000 plan "$workflow" --var path=/scale-1000/ --parallelism 32
measure "apply, 1000 rotations" 1000 apply "$workflow" --var path=/scale-1000/ --auto-approve --state-dir "$out/state-1000"
measure "apply, 50 rotations" 50 apply "$workflow" --var path=/scale-50/ --auto-approve --state-dir "$out/state-50"
measure "apply, 500 rotations" 500 apply "$workflow" --var path=/scale-500/ --auto-approve --state-dir "$out/state-500"

status=0
for n in 1000 50 500; do
  finished=$(grep -c '"event":"finished"' "$out/state-$n/journal.jsonl" || true)
  if [[ $finished != "$n" ]]; then
    echo "FAIL: $finished of $n rotations finished"
    status=1
  fi
done
if (( ${peak[500]} * 2 > ${peak[50]} * 3 )); then
  echo "FAIL: peak memory grew from ${peak[50]} KB (50 rotations) to ${peak[500]} KB (500)"
  status=1
fi
exit $status
