#!/usr/bin/env bash
# Fault sweep: the 20-user x 3-target rotation test under several fault
# mixes and seeds (through scripts/aws-proxy.py). Prints one line per run:
# the mix, the seed, whether it converged, how many apply runs it took and
# how many calls and faults the proxy saw.
#
#   bench/faults.sh [SEEDS]   (default 5 seeds per mix)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
scripts/emulator install
mixes=(
  "--throttle 0.10 --error 0.05 --drop 0.02"
  "--throttle 0.10 --error 0.05 --drop 0.01 --lose 0.01"
  "--throttle 0.30"
  "--error 0.15 --lose 0.05"
)
for mix in "${mixes[@]}"; do
  for seed in $(seq "$seeds"); do
    out=$(REKEY_FAULT_SEED=$seed REKEY_FAULT_MIX="$mix" cargo test --quiet --test rekey twenty_rotations_converge -- --nocapture 2>&1 || true)
    line=$(grep -E '^FAULTS ' <<< "$out" || echo "FAULTS seed=$seed mix=[$mix] converged=NO")
    echo "$line"
  done
done
