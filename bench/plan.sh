#!/usr/bin/env bash
# Benchmark: `rekey plan` over USERS users (default 1000; 1.5 keys and one
# SSM parameter each) behind a proxy that adds LATENCY ms per call (default
# 50, a round trip to IAM's one endpoint), against a sequential boto3 script
# that reads the same data. Also runs rekey straight at the emulator, to show
# the emulator's own ceiling (~400 calls/s, one Python process).
#
#   bench/plan.sh [USERS] [LATENCY]
#
# Reports wall time, API calls (counted by the proxy), calls per user and
# rekey's peak RSS. Starts and stops its own emulator and proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-1000}
latency=${2:-50}
out=bench/out/plan
rm -rf "$out" && mkdir -p "$out"

source bench/lib.sh
cargo build --release --quiet
start_emulator
echo "seeding $users users..."
scripts/emulator python bench/plan-seed.py "$users" /bench/ 1
start_proxy "$latency" "$out/calls.jsonl"

calls() { wc -l < "$out/calls.jsonl" | tr -d ' '; }
printf '\n%-34s %9s %7s %10s %8s  %s\n' run seconds calls calls/user "peak MB" result
run_rekey() {
  local label=$1 endpoint=$2 parallelism=$3
  : > "$out/calls.jsonl"
  local start end
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$endpoint /usr/bin/time -f '%M' -o "$out/rss" \
    target/release/rekey plan bench/workflows/plan-1000.yaml --parallelism "$parallelism" --json > "$out/plan.json"
  end=$(date +%s%N)
  local seconds result n
  seconds=$(echo "($end - $start) / 1000000000" | bc -l)
  result=$(python3 -c "import json,sys; s=json.load(open('$out/plan.json'))['summary']; print(f\"{s['rotate']} rotate, {s['unchanged']} unchanged, {s['blocked']} blocked\")")
  n=$(calls)
  if [[ $endpoint == "$emulator" ]]; then n="-"; fi
  printf '%-34s %9.1f %7s %10s %8.1f  %s\n' "$label" "$seconds" "$n" \
    "$( [[ $n == - ]] && echo - || echo "scale=2; $n / $users" | bc)" "$(echo "$(tail -n 1 "$out/rss") / 1024" | bc -l)" "$result"
}

for parallelism in 16 32 64; do
  run_rekey "rekey, ${latency} ms, parallelism $parallelism" "$proxy" "$parallelism"
done
run_rekey "rekey, no proxy (emulator ceiling)" "$emulator" 64

: > "$out/calls.jsonl"
result=$(AWS_ENDPOINT_URL=$proxy scripts/emulator python bench/plan-boto3.py)
seconds=$(echo "$result" | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
n=$(calls)
printf '%-34s %9.1f %7s %10s %8s  %s\n' "boto3 sequential, ${latency} ms" "$seconds" "$n" "$(echo "scale=2; $n / $users" | bc)" "-" "$result"
