#!/usr/bin/env bash
# Benchmark: `rekey apply` of USERS rotations (default 100) with two SSM
# targets each, behind a proxy adding LATENCY ms per call (default 20).
# Runs three times: with the state directory (journal, staging) on disk and
# on a tmpfs (/dev/shm), to show what the synced journal costs, and with the
# state in S3 (`--state s3://…`: journal objects, lease, claims; staging in
# SSM), to show what shared state costs. Reports wall time, API calls per
# rotation by action, journal records, and how soon the new-key
# verification ended after the key worked.
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
for run in disk tmpfs s3; do
  scripts/emulator python bench/plan-seed.py "$users" "/bench-$run/" 0 > /dev/null
done
scripts/emulator python - "$emulator" <<'PY'
import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket="rekey-bench")
PY

# Every journal record of a run, one JSON per line: from the state
# directory's file, or from the bucket's objects.
records_of() {
  if [[ $1 == s3 ]]; then
    scripts/emulator python - "$emulator" <<'PY'
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="rekey-bench", Prefix="teams/")
for page in pages:
    for o in page.get("Contents", []):
        body = json.load(s3.get_object(Bucket="rekey-bench", Key=o["Key"])["Body"])
        for entry in body.get("entries", []):
            print(json.dumps(entry))
PY
  else
    cat "$2/journal.jsonl"
  fi
}
start_proxy "$latency" "$out/calls.jsonl"

printf '\n%-8s %9s %8s %14s %9s  %s\n' state seconds calls calls/rotation journal "verify ended after the key worked (ms: median, max)"
for run in disk tmpfs s3; do
  shared=()
  case $run in
    disk) state=$out/state-disk ;;
    tmpfs) state=$(mktemp -d /dev/shm/rekey-bench.XXXXXX) ;;
    s3) state=$out/state-s3; shared=(--state s3://rekey-bench/teams) ;;
  esac
  : > "$out/calls.jsonl"
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$proxy "$rekey" apply bench/workflows/apply-100.yaml --var "path=/bench-$run/" \
    --auto-approve --state-dir "$state" "${shared[@]}" > "$out/apply-$run.log"
  end=$(date +%s%N)
  calls=$(wc -l < "$out/calls.jsonl")
  records_of "$run" "$state" > "$out/records-$run.jsonl"
  records=$(wc -l < "$out/records-$run.jsonl")
  verify=$(python3 - "$out/records-$run.jsonl" <<'PY'
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
for run in disk s3; do
  echo
  echo "calls per rotation by action ($run run):"
  python3 - "$out/calls-$run.jsonl" "$users" <<'PY'
import collections, json, sys
counts = collections.Counter(f'{c["service"]}:{c["action"]}' for c in map(json.loads, open(sys.argv[1])))
for action, count in counts.most_common():
    print(f"  {action:<32} {count / int(sys.argv[2]):5.2f}")
PY
done
