#!/usr/bin/env bash
# Benchmark: what the credential report saves a plan. Seeds DUE users, then
# (after a pause) USERS - DUE more, and plans with `max_key_age` set so that
# exactly the first DUE users are due, behind a proxy adding LATENCY ms per
# call and dating moto's live credential report now (--report-now): once
# with the report (the default) and once with --no-credential-report.
#
#   [REKEY=BINARY] bench/report.sh [USERS] [DUE] [LATENCY]
#
# Reports wall time, API calls by action, and whether both plans decided
# alike.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-1000}
due=${2:-100}
latency=${3:-50}
out=bench/out/report
rm -rf "$out" && mkdir -p "$out"

source bench/lib.sh
rekey=${REKEY:-target/release/rekey}
[[ -n ${REKEY:-} ]] || cargo build --release --quiet
start_emulator
echo "seeding $due due users, then $((users - due)) young ones..."
scripts/emulator python bench/plan-seed.py "$due" /report/ 0 old > /dev/null
middle=$(date +%s)
sleep 2
scripts/emulator python bench/plan-seed.py "$((users - due))" /report/ 0 new > /dev/null
# Judged at the end of seeding (both plans alike, however long they take):
# the due users' keys are older than max_key_age, the others younger.
now=$(date +%s)
as_of=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
age=$(( now - middle - 1 ))
cat > "$out/workflow.yaml" <<YAML
version: 1
name: bench-report
select:
  path_prefix: /report/
  max_key_age: ${age}s
targets:
  - id: app
    ssm_parameter: { name: "/report/\${user}/aws" }
YAML
# The proxy dates moto's report now.
start_proxy "$latency" "$out/calls.jsonl" --report-now

printf '\n%-24s %9s %7s  %s\n' plan seconds calls "rotate/unchanged"
for mode in report no-report; do
  flags=()
  [[ $mode == no-report ]] && flags=(--no-credential-report)
  : > "$out/calls.jsonl"
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$proxy "$rekey" plan "$out/workflow.yaml" --json --as-of "$as_of" "${flags[@]}" > "$out/plan-$mode.json"
  end=$(date +%s%N)
  cp "$out/calls.jsonl" "$out/calls-$mode.jsonl"
  decided=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(str(s["rotate"]) + "/" + str(s["unchanged"]))' "$out/plan-$mode.json")
  printf '%-24s %9.1f %7s  %s\n' "$mode" "$(echo "($end - $start) / 1000000000" | bc -l)" "$(wc -l < "$out/calls.jsonl")" "$decided"
done
python3 - "$out" <<'PY'
import collections, json, sys
out = sys.argv[1]
for mode in ("report", "no-report"):
    counts = collections.Counter(c["action"] for c in map(json.loads, open(f"{out}/calls-{mode}.jsonl")))
    print(f"{mode}: " + ", ".join(f"{a} {n}" for a, n in counts.most_common()))
decide = lambda m: [(u["user"], u["decision"]) for u in json.load(open(f"{out}/plan-{m}.json"))["users"]]
same = decide("report") == decide("no-report")
print("same decisions:", "yes" if same else "NO")
sys.exit(0 if same else 1)
PY
