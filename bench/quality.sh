#!/usr/bin/env bash
# Detection quality on a larger labelled stream: generates it with riskgen,
# starts a throwaway riskd, registers the sites and runs riskctl quality.
# Settings (environment): SEEDS (default "1 2 3"), RATES (attack-rate
# multipliers, default "1"), ACCOUNTS (default 10000), DURATION (default 2h),
# JSON=1 for JSON reports. Exits non-zero when any run misses a target.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3"} RATES=${RATES:-1} ACCOUNTS=${ACCOUNTS:-10000} DURATION=${DURATION:-2h}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/riskd ./cmd/riskctl ./cmd/riskgen
status=0
for seed in $SEEDS; do
  for rate in $RATES; do
    echo "== seed $seed, attack rate $rate, $ACCOUNTS accounts, $DURATION"
    "$work/riskgen" --seed "$seed" --attack-rate "$rate" --accounts "$ACCOUNTS" --duration "$DURATION" --end-now \
      --out "$work/events" --labels "$work/labels" --sites "$work/sites" 2>/dev/null
    data="$work/data-$seed-$rate"
    port=$(( 20000 + RANDOM % 20000 ))
    "$work/riskd" --listen "127.0.0.1:$port" --data-dir "$data" --budget 2s >"$work/riskd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do [ -s "$data/credentials.json" ] && break; sleep 0.1; done
    sleep 0.5
    args=(--server "http://127.0.0.1:$port" --data-dir "$data" --timeout 60s quality --sites "$work/sites")
    [ "${JSON:-}" = 1 ] && args+=(--json)
    "$work/riskctl" "${args[@]}" "$work/events" "$work/labels" || status=$?
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
exit "$status"
