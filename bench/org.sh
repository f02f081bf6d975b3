#!/usr/bin/env bash
# Benchmark: `rekey plan` over an AWS Organization of ACCOUNTS accounts
# (default 20) with USERS users each (default 200), DUE of them due (default
# 20, 10%), behind a proxy adding LATENCY ms per call (default 50) and dating
# moto's live credential report now (--report-now, as a real report is),
# against the scripts teams run today: boto3 reading every user of every
# account, (a) sequentially and (b) on 16 threads.
#
#   [REKEY=BINARY] [BOTO3=both|threads|none] bench/org.sh [ACCOUNTS] [USERS] [DUE] [LATENCY]
#
# Then `rekey report` over every account, for its calls and time beside
# plan's. Also plans a quarter and half of the accounts (--account), and the same
# with one selected user per account (what each account itself costs, the
# plan document aside), to show rekey's peak memory against the number of
# accounts. Reports wall time, API calls (counted by the proxy) and peak RSS;
# checks that every run finds the same number of due users. BOTO3=threads
# runs only the threaded script, BOTO3=none neither.
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-20}
users=${2:-200}
due=${3:-20}
latency=${4:-50}
out=bench/out/org
rm -rf "$out" && mkdir -p "$out"

source bench/lib.sh
rekey=${REKEY:-target/release/rekey}
[[ -n ${REKEY:-} ]] || cargo build --release --quiet
start_emulator
echo "seeding $accounts accounts: $due due users each, then $((users - due)) young ones..."
scripts/emulator python bench/org-seed.py "$accounts" "$users" "$due" old > "$out/seed.json"
middle=$(date +%s)
sleep 2
scripts/emulator python bench/org-seed.py "$accounts" "$users" "$due" new > /dev/null
# Judged at the end of seeding: the due users' keys are older than
# max_key_age, the others (made 2 s after them) younger.
now=$(date +%s)
as_of=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
age=$(( now - middle - 1 ))
ou=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ou"])' "$out/seed.json")
cat > "$out/workflow.yaml" <<YAML
version: 1
name: bench-org
select:
  path_prefix: /org/
  max_key_age: ${age}s
accounts:
  organization: { ous: [$ou], tags: { rotation: enabled } }
  role: RekeyRotation
targets:
  - id: app
    ssm_parameter: { name: "/org/\${user}/aws" }
policy:
  account_concurrency: 8
YAML

start_proxy "$latency" "$out/calls.jsonl" --report-now

calls() { wc -l < "$out/calls.jsonl" | tr -d ' '; }
printf '\n%-36s %8s %9s %7s %8s\n' run accounts seconds calls "peak MB"
rekey_plan() {
  local label=$1 workflow=$2; shift 2
  : > "$out/calls.jsonl"
  local start end
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$proxy /usr/bin/time -f '%M' -o "$out/rss" \
    "$rekey" plan "$workflow" --json --as-of "$as_of" "$@" > "$out/plan.json"
  end=$(date +%s%N)
  local reached found
  reached=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(len(p["accounts"]))' "$out/plan.json")
  found=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["rotate"])' "$out/plan.json")
  printf '%-36s %8s %9.1f %7s %8.1f  (%s due)\n' "$label" "$reached" \
    "$(echo "($end - $start) / 1000000000" | bc -l)" "$(calls)" \
    "$(echo "$(tail -n 1 "$out/rss") / 1024" | bc -l)" "$found"
  echo "$found" > "$out/found-$label"
  cp "$out/calls.jsonl" "$out/calls-${label//[ ,]/_}.jsonl"
}
ids=($(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["accounts"]))' "$out/seed.json"))
quarter=(); for id in "${ids[@]:0:$((accounts / 4))}"; do quarter+=(--account "$id"); done
half=(); for id in "${ids[@]:0:$((accounts / 2))}"; do half+=(--account "$id"); done
rekey_plan "rekey, a quarter of the accounts" "$out/workflow.yaml" "${quarter[@]}"
rekey_plan "rekey, half of the accounts" "$out/workflow.yaml" "${half[@]}"
rekey_plan "rekey, every account" "$out/workflow.yaml"
rekey_found=$(cat "$out/found-rekey, every account")
# `rekey report` over the same accounts: every user's every key (not only
# the selected ones), judged by the controls.
: > "$out/calls.jsonl"
start=$(date +%s%N)
AWS_ENDPOINT_URL=$proxy /usr/bin/time -f '%M' -o "$out/rss" \
  "$rekey" report "$out/workflow.yaml" --format json --as-of "$as_of" > "$out/report.json" || [ $? -eq 5 ]
end=$(date +%s%N)
printf '%-36s %8s %9.1f %7s %8.1f  (%s keys)\n' "rekey report, every account" \
  "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["accounts"]))' "$out/report.json")" \
  "$(echo "($end - $start) / 1000000000" | bc -l)" "$(calls)" \
  "$(echo "$(tail -n 1 "$out/rss") / 1024" | bc -l)" \
  "$(python3 -c 'import json,sys; print(sum(a["summary"]["keys"] for a in json.load(open(sys.argv[1]))["accounts"]))' "$out/report.json")"
python3 - "$out/calls.jsonl" <<'PY'
import collections, json, sys
actions = collections.Counter(json.loads(line).get("action", "?") for line in open(sys.argv[1]))
print("  report calls by action:", ", ".join(f"{a} {n}" for a, n in actions.most_common()))
PY
sed 's|^  path_prefix: /org/|  path_prefix: /org/\n  users: [user-00000]|' "$out/workflow.yaml" > "$out/one-user.yaml"
rekey_plan "one user each, a quarter" "$out/one-user.yaml" "${quarter[@]}"
rekey_plan "one user each, half" "$out/one-user.yaml" "${half[@]}"
rekey_plan "one user each, every account" "$out/one-user.yaml"

script() {
  local label=$1 threads=$2 result
  : > "$out/calls.jsonl"
  result=$(AWS_ENDPOINT_URL=$proxy scripts/emulator python bench/org-boto3.py "$ou" "$age" "$as_of" "$threads")
  printf '%-36s %8s %9.1f %7s %8s  (%s due)\n' "$label" \
    "$(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"])')" \
    "$(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')" \
    "$(calls)" - \
    "$(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["due"])')"
  echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["due"])' > "$out/found-$label"
}
boto3=${BOTO3:-both}
[[ $boto3 == none ]] || script "boto3, 16 threads" 16
[[ $boto3 == both ]] && script "boto3, sequential" 1
for label in "boto3, 16 threads" "boto3, sequential"; do
  if [[ -f "$out/found-$label" && $(cat "$out/found-$label") != "$rekey_found" ]]; then
    echo "MISMATCH: $label found $(cat "$out/found-$label") due, rekey $rekey_found" >&2
    exit 1
  fi
done
echo "every run found $rekey_found due users"
