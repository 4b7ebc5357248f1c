#!/usr/bin/env bash
# Times file -> riskctl ingest -> Connect stream -> riskd (features, Pebble)
# end to end, on a fresh data directory, and prints events/s and the CPU
# each side used (so that a busy machine's figure can be read per core).
#
#   [STREAMS=2] bench/ingest.sh [LINES] [combined|ndjson]
#
# combined: web access log lines (SERVICE_LOG events, account from ?uid=);
# ndjson: the bench workload's mixed events (logins, payments, check-ins,
# device reports, each with a full app list). Default 1,000,000 combined.
set -euo pipefail
n=${1:-1000000}
format=${2:-combined}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
riskd=
trap 'kill $riskd 2>/dev/null && wait $riskd 2>/dev/null; rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/" ./cmd/riskd ./cmd/riskctl ./bench/ingestgen
flags=()
if [ "$format" = combined ]; then
  "$work/ingestgen" -format combined -n "$n" -accounts 50000 -o "$work/input"
  flags=(--account-from query:uid)
else
  "$work/ingestgen" -format ndjson -n "$n" -accounts 100000 -o "$work/input"
fi
port=$((20000 + RANDOM % 20000))
"$work/riskd" --data-dir "$work/data" --listen "127.0.0.1:$port" --log-level warn &
riskd=$!
# Ready when the credentials are written and the port accepts connections
# (a loaded machine can take a while between the two).
for _ in $(seq 100); do
  [ -f "$work/data/credentials.json" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
start=$(date +%s.%N)
/usr/bin/time -f "riskctl: %U s user, %S s system" \
  "$work/riskctl" --server "http://127.0.0.1:$port" --data-dir "$work/data" \
  ingest --progress none --streams "${STREAMS:-2}" "${flags[@]}" "$work/input"
end=$(date +%s.%N)
read -r utime stime < <(awk '{print $14, $15}' /proc/$riskd/stat)
tck=$(getconf CLK_TCK)
awk -v n="$n" -v s="$start" -v e="$end" -v u="$utime" -v st="$stime" -v t="$tck" 'BEGIN {
  cpu = (u + st) / t
  printf "%d events in %.1f s: %.0f events/s; riskd used %.1f CPU s (%.1f us/event, %.0f events per riskd CPU second)\n",
    n, e - s, n / (e - s), cpu, cpu * 1e6 / n, n / cpu }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
