#!/usr/bin/env bash
# Benchmark: validate + compile large generated workflows in a release build.
#
#   bench/validate.sh [RUNS]
#
# Cases (generated under bench/out/, not committed):
#   items-1000   one file with 600 targets and 400 hooks, with needs chains
#   uses-200     a workflow that uses 200 library files (400 targets, 200 hooks)
#   chain-200    a chain of 200 libraries, each using the next
# Reports the median wall time of the whole process (start to exit) and the
# largest peak RSS (GNU time) over RUNS runs (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
out=bench/out
rm -rf "$out" && mkdir -p "$out/lib" "$out/chain"

python3 - "$out" <<'PY'
import sys
out = sys.argv[1]
head = 'version: 1\nname: {name}\nselect:\n  users: ["ci-*"]\n'

# items-1000: 600 targets, 400 hooks, needs chains of length 10.
lines = [head.format(name="items-1000"), "targets:\n"]
for i in range(600):
    lines.append(f'  - id: t{i}\n    ssm_parameter: {{ name: "/apps/${{user}}/t{i}", format: json }}\n')
    if i % 10:
        lines.append(f"    needs: [t{i-1}]\n")
lines.append("hooks:\n")
for phase, prefix, count in (("refresh", "ref", 150), ("verify", "vfy", 150), ("verify_after_disable", "vad", 100)):
    lines.append(f"  {phase}:\n")
    for i in range(count):
        lines.append(f'    - id: {prefix}{i}\n      http: {{ url: "http://127.0.0.1:8080/{phase}/{i}?u=${{user}}" }}\n')
        if i % 10:
            lines.append(f"      needs: [{prefix}{i-1}]\n")
open(f"{out}/items-1000.yaml", "w").write("".join(lines))

# uses-200: 200 libraries, each with a param, 2 targets and a hook.
uses = []
for i in range(200):
    open(f"{out}/lib/l{i}.yaml", "w").write(
        "version: 1\nkind: library\nparams:\n  prefix: {}\n"
        f'targets:\n  - id: l{i}a\n    ssm_parameter: {{ name: "${{params.prefix}}/${{user}}/{i}" }}\n'
        f'  - id: l{i}b\n    exec: {{ command: ["./push.sh", "${{user}}", "${{new_key.id}}"] }}\n    needs: [l{i}a]\n'
        f'hooks:\n  verify:\n    - id: l{i}h\n      http: {{ url: "http://127.0.0.1/{i}" }}\n'
        "policy:\n  soak: 7d\n")
    uses.append(f'  - file: lib/l{i}.yaml\n    with: {{ prefix: "/apps/${{params.env}}" }}\n')
open(f"{out}/uses-200.yaml", "w").write(
    head.format(name="uses-200").replace("select:", "params:\n  env: { default: prod }\nselect:") + "uses:\n" + "".join(uses))

# chain-200: l0 uses l1 uses ... l199, each adding one target.
for i in range(200):
    nxt = f"uses:\n  - file: c{i+1}.yaml\n" if i < 199 else ""
    open(f"{out}/chain/c{i}.yaml", "w").write(
        f"version: 1\nkind: library\n{nxt}targets:\n  - id: c{i}\n    ssm_parameter: {{ name: \"/c/${{user}}/{i}\" }}\n")
open(f"{out}/chain-200.yaml", "w").write(head.format(name="chain-200") + "uses:\n  - file: chain/c0.yaml\n")
PY

cargo build --release --quiet
bin=target/release/rekey
printf '%-12s %6s %10s %9s  %s\n' case runs "median ms" "peak MB" "result"
for case in items-1000 uses-200 chain-200; do
  file="$out/$case.yaml"
  result=$("$bin" validate "$file" 2>&1 | tail -n 1)
  times=() peak=0
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$out/rss" "$bin" validate "$file" >/dev/null
    end=$(date +%s%N)
    times+=("$(( (end - start) / 1000 ))")
    kb=$(tail -n 1 "$out/rss")
    (( kb > peak )) && peak=$kb
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-12s %6s %10.1f %9.1f  %s\n' "$case" "$runs" "$(echo "$median/1000" | bc -l)" "$(echo "$peak/1024" | bc -l)" "${result#*: }"
done
