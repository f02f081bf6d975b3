#!/usr/bin/env bash
# Benchmark: `rekey apply` of USERS rotations (default 100) with two SSM
# targets each, behind a proxy adding LATENCY ms per call (default 20).
# Runs twice, with the state directory (journal, staging) on disk and on a
# tmpfs (/dev/shm), to show what the synced journal costs. Reports wall
# time, API calls per rotation by action, journal records, and how soon the
# new-key verification ended after the key worked.
#
#   [REKEY=BINARY] bench/apply.sh [USERS] [LATENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100}
latency=${2:-20}
out=bench/out/apply
rm -rf "$out" && mkdir -p "$out"

source bench/lib.sh
# REKEY=path/to/rekey benchmarks another build (an older one, say).
rekey=${REKEY:-target/release/rekey}
[[ -n ${REKEY:-} ]] || cargo build --release --quiet
start_emulator
for run in disk tmpfs; do
  scripts/emulator python bench/plan-seed.py "$users" "/bench-$run/" 0 > /dev/null
done
start_proxy "$latency" "$out/calls.jsonl"

printf '\n%-8s %9s %8s %14s %9s  %s\n' state seconds calls calls/rotation journal "verify ended after the key worked (ms: median, max)"
for run in disk tmpfs; do
  if [[ $run == disk ]]; then state=$out/state-disk; else state=$(mktemp -d /dev/shm/rekey-bench.XXXXXX); fi
  : > "$out/calls.jsonl"
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$proxy "$rekey" apply bench/workflows/apply-100.yaml --var "path=/bench-$run/" \
    --auto-approve --state-dir "$state" > "$out/apply-$run.log"
  end=$(date +%s%N)
  calls=$(wc -l < "$out/calls.jsonl")
  records=$(wc -l < "$state/journal.jsonl")
  verify=$(python3 - "$state/journal.jsonl" <<'PY'
import json, statistics, sys
def after_ms(e):
    if "data" in e:  # the first journal format
        return int(e["data"]["authenticated_after_ms"])
    return e["done"]["checked"]["sts_identity"]["after_ms"]
ms = [after_ms(e) for e in map(json.loads, open(sys.argv[1]))
      if e["event"] == "done" and e.get("step") == "verify:works"]
print(f"{statistics.median(ms):.0f}, {max(ms)} over {len(ms)} checks")
PY
)
  printf '%-8s %9.1f %8s %14.1f %9s  %s\n' "$run" "$(echo "($end - $start) / 1000000000" | bc -l)" "$calls" \
    "$(echo "$calls / $users" | bc -l)" "$records" "$verify"
  cp "$out/calls.jsonl" "$out/calls-$run.jsonl"
  [[ $run == tmpfs ]] && rm -rf "$state"
done
echo
echo "calls per rotation by action (disk run):"
python3 - "$out/calls-disk.jsonl" "$users" <<'PY'
import collections, json, sys
counts = collections.Counter(f'{c["service"]}:{c["action"]}' for c in map(json.loads, open(sys.argv[1])))
for action, count in counts.most_common():
    print(f"  {action:<32} {count / int(sys.argv[2]):5.2f}")
PY
