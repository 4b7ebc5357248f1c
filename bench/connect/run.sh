#!/usr/bin/env bash
# riskd over Connect against the transport floor, on this machine, in one run,
# with the CPU each server process spent per answered request (user+sys from
# /proc), which a shared, loaded machine distorts far less than req/s, and
# the load tool's own (on two cores it takes a share of the machine too).
#
#   bench/connect/run.sh [--clients 64] [--duration 10s] [--populate N] [--trace]
#
# Builds riskd and riskbench, starts riskd on a fresh data dir and a
# `riskbench serve-floor` process, then: closed loop on riskd, closed loop on
# the floor (same clients), open loop on riskd at half its closed-loop rate.
# Each measurement of riskd starts once its store has settled (no compaction
# running or owed). Stops both servers by pid on exit. Reports land in $OUT
# (default a temp dir).
# --populate N first gives riskd the feature state of a population of N
# accounts (one login each from home, through Ingest: `riskbench populate`),
# and every run then draws from that population: the issue's targets assume
# 1M accounts and 1M devices. Without it riskd starts empty and riskbench
# draws from its default 100,000 accounts.
# --trace runs riskd with GODEBUG=gctrace=1, stamps each line riskd logs with
# its arrival time, keeps the open loop's latency log and lines the two up
# (bench/connect/spikes.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=64 duration=10s trace= populate=
while [[ $# -gt 0 ]]; do
	case $1 in
	--clients) clients=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--trace) trace=1; shift ;;
	--populate) populate=$2; shift 2 ;;
	*) echo "usage: $0 [--clients N] [--duration D] [--populate N] [--trace]" >&2; exit 2 ;;
	esac
done
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/" ./cmd/riskd ./cmd/riskbench
port=$((20000 + RANDOM % 20000)); fport=$((port + 1))
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
if [[ -n $trace ]]; then
	# GC trace lines carry no wall time: stamp every line as it arrives.
	stamp='import sys, time
for line in sys.stdin.buffer:
    sys.stdout.write("%d %s" % (time.time_ns(), line.decode(errors="replace"))); sys.stdout.flush()'
	GODEBUG=gctrace=1 "$out/riskd" --listen 127.0.0.1:$port --data-dir "$out/data" 2> >(python3 -c "$stamp" >"$out/riskd.log") >/dev/null &
else
	"$out/riskd" --listen 127.0.0.1:$port --data-dir "$out/data" >"$out/riskd.log" 2>&1 &
fi
pids+=($!); rpid=$!
"$out/riskbench" serve-floor --listen 127.0.0.1:$fport >"$out/floor.log" 2>&1 &
pids+=($!); fpid=$!
for _ in $(seq 100); do [[ -s "$out/data/credentials.json" ]] && curl -s -o /dev/null http://127.0.0.1:$port/ && break; sleep 0.1; done
sleep 1

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks
tck=$(getconf CLK_TCK)
jq_ok() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"][0]; print(r["requests"]["ok"] + r["requests"]["warmup"], "%.0f" % r["throughput_ok_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r.get("errors_by_code") or {})' "$1"; }
# bench runs the load tool and leaves the CPU it spent (user+sys seconds,
# its event generation included) in $out/tool-cpu: on two cores the tool
# shares the machine with the server it measures.
bench() {
	local TIMEFORMAT='%U %S'
	{ time "$out/riskbench" --quiet --data-dir "$out/data" --duration "$duration" --warmup 2s ${populate:+--accounts "$populate"} "$@" 2>"$out/tool.err"; } 2>"$out/tool-cpu" ||
		{ cat "$out/tool.err" >&2; return 1; }
}
# settle waits (up to 2 min) until riskd has run no compaction for half a
# second, so that each measurement of riskd starts from a settled store
# instead of paying for the writes of the step before it (the population,
# or the closed loop, whose compactions the floor run starved). Pebble's
# estimated debt is no test: it counts a lone L0 file that no compaction is
# due for yet.
settle() {
	local t0=$SECONDS quiet=0
	for _ in $(seq 1200); do
		if curl -s http://127.0.0.1:$port/metrics | grep -q '^riskd_pebble_compactions_in_progress 0$'; then
			quiet=$((quiet + 1))
			if ((quiet == 5)); then
				echo "store settled after $((SECONDS - t0)) s"
				return
			fi
		else
			quiet=0
		fi
		sleep 0.1
	done
	echo "store still compacting after 2 min; measuring anyway"
}
tool_us() { awk -v n="$1" '{printf "%.1f", ($1 + $2) * 1e6 / n}' "$out/tool-cpu"; } # per request
# syncs_at saves riskd's WAL sync histogram (riskd_pebble_wal_sync_seconds);
# syncs_since reports the syncs between two saves: how many requests each
# carried (a synced group commit costs the same CPU whatever it carries),
# their mean and the bucket that holds their p99.
syncs_at() { curl -s http://127.0.0.1:$port/metrics | grep '^riskd_pebble_wal_sync_seconds' >"$out/syncs-$1"; }
syncs_since() {
	python3 - "$out/syncs-$1" "$out/syncs-$2" "$3" <<'PY'
import re, sys
def read(path):
    m = {}
    for line in open(path):
        name, value = line.rsplit(" ", 1)
        m[name] = float(value)
    return m
a, b, n = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
d = {k: b[k] - a.get(k, 0) for k in b}
count = d.get("riskd_pebble_wal_sync_seconds_count", 0)
if count <= 0:
    sys.exit(print("WAL syncs: none"))
buckets = sorted((float(re.search(r'le="([^"]+)"', k).group(1)), v) for k, v in d.items() if "_bucket" in k)
p99 = next(le for le, c in buckets if c >= 0.99 * count)
print("WAL syncs: %d, %.1f requests each, mean %.2f ms, p99 <= %.1f ms"
      % (count, n / count, d["riskd_pebble_wal_sync_seconds_sum"] / count * 1e3, p99 * 1e3))
PY
}

echo "machine: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n $populate ]]; then
	"$out/riskbench" populate --quiet --data-dir "$out/data" --server http://127.0.0.1:$port --accounts "$populate" 2>&1 | tail -n 1
fi
settle
c0=$(cpu $rpid)
syncs_at closed0
bench --server http://127.0.0.1:$port --clients "$clients" --out "$out/riskd-closed.json" >"$out/riskd-closed.txt"
c1=$(cpu $rpid)
syncs_at closed1
read -r n rate p50 p99 errs < <(jq_ok "$out/riskd-closed.json")
riskd_cpu=$(echo "scale=1; ($c1 - $c0) * 1000000 / $tck / $n" | bc)
echo "riskd  closed loop, $clients clients: $rate ok/s, p50 $p50 ms, p99 $p99 ms, errors $errs; server CPU $riskd_cpu µs/request, load tool $(tool_us "$n") µs/request"
echo "       $(syncs_since closed0 closed1 "$n")"

f0=$(cpu $fpid)
bench --target floor --floor-server http://127.0.0.1:$fport --clients "$clients" --out "$out/floor-closed.json" >"$out/floor-closed.txt"
f1=$(cpu $fpid)
read -r fn frate fp50 fp99 ferrs < <(jq_ok "$out/floor-closed.json")
floor_cpu=$(echo "scale=1; ($f1 - $f0) * 1000000 / $tck / $fn" | bc)
echo "floor  closed loop, $clients clients: $frate ok/s, p50 $fp50 ms, p99 $fp99 ms, errors $ferrs; server CPU $floor_cpu µs/request, load tool $(tool_us "$fn") µs/request"
echo "riskd / floor: throughput $(echo "scale=3; $rate / $frate" | bc); server CPU per request $(echo "scale=2; $riskd_cpu / $floor_cpu" | bc)x"

half=$(( ${rate%.*} / 2 ))
settle
syncs_at open0
bench --server http://127.0.0.1:$port --rate "$half" --out "$out/riskd-open.json" ${trace:+--latency-log "$out/open"} >"$out/riskd-open.txt"
syncs_at open1
read -r on orate op50 op99 oerrs < <(jq_ok "$out/riskd-open.json")
echo "riskd  open loop at $half/s: $orate ok/s, p50 $op50 ms, p99 $op99 ms, errors $oerrs"
echo "       $(syncs_since open0 open1 "$on")"
[[ -z $trace ]] || python3 bench/connect/spikes.py "$out"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); reports in $out"
