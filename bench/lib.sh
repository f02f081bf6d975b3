# Shared by the benchmarks: an emulator and a latency proxy that stop when
# the benchmark ends. Source it, then call `start_emulator` and
# `start_proxy LATENCY_MS LOG`; they set $emulator and $proxy.

start_emulator() {
  export REKEY_EMULATOR_RUN=$PWD/target/emulator-bench
  scripts/emulator install
  local exports
  exports=$(scripts/emulator start)
  eval "$exports"
  emulator=$AWS_ENDPOINT_URL
  trap stop_all EXIT
}

# The proxy serves until its stdin closes: feed it from a fifo held open.
# More arguments go to the proxy (`--report-now`, say).
start_proxy() {
  local latency=$1 log=$2 run
  shift 2
  run=$(mktemp -d)
  mkfifo "$run/in"
  sleep infinity > "$run/in" &
  proxy_holder=$!
  python3 scripts/aws-proxy.py --upstream "$emulator" --latency-ms "$latency" --log "$log" "$@" < "$run/in" > "$run/out" &
  proxy_pid=$!
  until grep -q '^listening on ' "$run/out" 2>/dev/null; do sleep 0.1; done
  proxy=$(sed -n 's/^listening on //p' "$run/out")
}

stop_all() {
  [[ -n ${proxy_pid:-} ]] && kill "$proxy_pid" 2>/dev/null
  [[ -n ${proxy_holder:-} ]] && kill "$proxy_holder" 2>/dev/null
  scripts/emulator stop
}
