#!/usr/bin/env python3
"""Line the open loop's slow answers up with riskd's garbage collections.

    bench/connect/spikes.py OUT [THRESHOLD_MS]

OUT is a `bench/connect/run.sh --trace` output directory: riskd.log holds
riskd's stderr with each line prefixed by its arrival time (Unix ns), so the
GODEBUG=gctrace=1 lines get a wall time; open-riskd.csv is riskbench's latency
log of the open-loop run. Prints the share of the window riskd spent in GC
mark phases against the share of slow answers (over THRESHOLD_MS, default 5)
that overlapped one; how slow answers fall within each second (riskd's feature
store flushes once a second, so a peak at one phase of the second points at
it); and every 100 ms bin holding a slow answer, with the GCs it overlaps.
"""
import collections
import os
import re
import sys

out = sys.argv[1]
thr_us = float(sys.argv[2] if len(sys.argv) > 2 else 5) * 1000
reqs = []  # (scheduled ns, done ns, latency us)
with open(os.path.join(out, "open-riskd.csv")) as f:
    next(f)
    for line in f:
        s, d, us, _ = line.rstrip("\n").split(",")
        reqs.append((int(s), int(d), int(us)))
if not reqs:
    sys.exit("no requests in the latency log")
t0, t1 = reqs[0][0], max(r[1] for r in reqs)

# "gc 12 @3.456s 2%: 0.1+25+0.05 ms clock, ... 350->360->180 MB, 380 MB goal": the
# line is written when the cycle ends; its three clock phases give its start.
gc_re = re.compile(r"gc \d+ @[\d.]+s \d+%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock.*?(\d+->\d+->\d+ MB)")
gcs = []
with open(os.path.join(out, "riskd.log"), errors="replace") as f:
    for line in f:
        ns, _, rest = line.partition(" ")
        m = gc_re.search(rest)
        if m and ns.isdigit():
            end = int(ns)
            start = end - int(sum(float(m[i]) for i in (1, 2, 3)) * 1e6)
            if end > t0 and start < t1:
                gcs.append((start, end, m[4]))


def overlaps(r, g):
    return r[0] < g[1] and g[0] < r[1]


slow = [r for r in reqs if r[2] > thr_us]
lat = sorted(r[2] for r in reqs)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
print("%d answers over %.1f s: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; %d (%.1f %%) over %g ms" % (
    len(reqs), (t1 - t0) / 1e9, pick(0.5), pick(0.99), pick(0.999), lat[-1] / 1000, len(slow), 100 * len(slow) / len(reqs), thr_us / 1000))
in_gc = sum(min(g[1], t1) - max(g[0], t0) for g in gcs)
hit = sum(1 for r in slow if any(overlaps(r, g) for g in gcs))
print("riskd GC: %d cycles, mark phases %.1f %% of the window, overlapping %.1f %% of the slow answers" % (
    len(gcs), 100 * in_gc / (t1 - t0), 100 * hit / max(1, len(slow))))
phase = collections.Counter(((r[0] - t0) % 1_000_000_000) // 100_000_000 for r in slow)
print("slow answers by phase of the second (100 ms buckets): " + " ".join("%d" % phase[i] for i in range(10)))
bins = collections.defaultdict(list)
for r in reqs:
    bins[(r[0] - t0) // 100_000_000].append(r)
print("\n  t (s)  answers  max ms  p50 ms  GC mark phases overlapping (start s, length ms, heap)")
for k in sorted(bins):
    b = bins[k]
    worst = max(r[2] for r in b)
    if worst <= thr_us:
        continue
    ev = ["%.2f %.0f ms %s" % ((g[0] - t0) / 1e9, (g[1] - g[0]) / 1e6, g[2]) for g in gcs if any(overlaps(r, g) for r in b)]
    print("%7.1f %8d %7.1f %7.1f  %s" % (k / 10, len(b), worst / 1000, sorted(r[2] for r in b)[len(b) // 2] / 1000, "; ".join(ev)))
