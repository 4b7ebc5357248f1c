#!/usr/bin/env bash
# Runs riskd's feature engine against the same features on Redis (see
# main.go). Installs Debian's redis-server if it is missing, starts a
# throwaway one on 127.0.0.1 at a random port without persistence, and stops
# it (by its pid) on exit. Extra arguments go to redisbench, e.g.
#   bench/redisbench/run.sh --events 100000 --workers 1,32 --duration 10s
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null; then
	echo "run.sh: installing redis-server (apt-get)" >&2
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
pidfile="$work/redis.pid"
stop() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [[ -n "$pid" ]]; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$work"
}
trap stop EXIT

redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
	--daemonize yes --pidfile "$pidfile" --dir "$work" --logfile "$work/redis.log"
for _ in $(seq 50); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.1
done
echo "run.sh: redis-server $(redis-server --version | grep -o 'v=[^ ]*') on 127.0.0.1:$port (pid $(cat "$pidfile")); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

go build -o "$work/redisbench" .
cpu0=$(redis-cli -p "$port" info cpu | awk -F: '/used_cpu_(sys|user):/{s+=$2} END{print s}')
"$work/redisbench" --redis "127.0.0.1:$port" "$@"
cpu1=$(redis-cli -p "$port" info cpu | awk -F: '/used_cpu_(sys|user):/{s+=$2} END{print s}')
echo "run.sh: redis-server used $(echo "$cpu1 - $cpu0" | bc) s of CPU over the whole run (the check pass included)"
