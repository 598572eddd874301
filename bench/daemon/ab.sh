#!/bin/bash
# Two berth builds, A and B, on the same machine in one run: `docker run --rm busybox
# true` (default network and --network none) in alternating rounds, each round on a
# freshly started daemon of that build over the same data root, so a change is measured
# against the build before it under the same load (this machine's figures drift by a
# third between hours: compare within a run, not across runs).
# With IO_LOAD=1 a writer keeps rewriting a 256 MB file beside the data root while the
# runs go (dirty pages on the same filesystem, as a build or a database would leave):
# what every sync of that filesystem then has to flush.
# Usage (root): [IO_LOAD=1] bench/daemon/ab.sh A-binary B-binary [runs per round] [rounds]
#   results → bench/results/ab.md (ab-io-load.md with IO_LOAD=1); OUT=name.md writes
#   bench/results/name.md instead
set -euo pipefail
a=$1 b=$2 runs=${3:-20} rounds=${4:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
writer=
stop_writer() { [ -z "$writer" ] || kill "$writer" 2>/dev/null; }
name=abberth net=23 first=$a berth_extra=--trace-phases on_exit=stop_writer
. "$top/bench/lib/two-berths.sh"
if [ "${IO_LOAD:-0}" = 1 ]; then
    (while true; do dd if=/dev/zero of="$work/ballast" bs=1M count=256 status=none; done) &
    writer=$!
fi
out=$top/bench/results/ab.md
[ "${IO_LOAD:-0}" = 1 ] && out=$top/bench/results/ab-io-load.md
[ -n "${OUT:-}" ] && out=$top/bench/results/$OUT
for r in $(seq "$rounds"); do
    # A first in odd rounds, B first in even ones: what one build's runs leave behind
    # (freed inodes that later allocations on ext4 scan past, dirty pages) weighs on
    # both alike.
    order="A B"; [ $((r % 2)) = 0 ] && order="B A"
    for which in $order; do
        bin=$a; [ $which = B ] && bin=$b
        start "$bin"
        for args in "" "--network none"; do
            for i in 1 2 3; do $docker -H "$B" run --rm $args busybox true; done
            # The daemon appends to its log: cut it, and keep what these runs add.
            : >"$work/berth.log"
            for i in $(seq "$runs"); do
                s=$(date +%s%N); $docker -H "$B" run --rm $args busybox true; e=$(date +%s%N)
                echo "$which|${args:-default}|$(( (e - s) / 1000 ))" >>"$work/times"
            done
            sleep 0.2
            grep -a "phases " "$work/berth.log" | sed "s/^/$which|${args:-default}|/" >>"$work/phases" || true
        done
        stop
    done
done
PYTHONPATH="$top/bench/lib" python3 - "$work/times" "$a" "$b" "$runs" "$rounds" "${IO_LOAD:-0}" "$work/phases" >"$out" <<'PY'
import statistics, sys, datetime, os
import phases
f, a, b, runs, rounds, io, phase_log = sys.argv[1:8]
t = {}
for line in open(f):
    w, v, us = line.strip().split("|")
    t.setdefault((w, v), []).append(int(us) / 1000)
print("# Two berth builds side by side: `docker run --rm busybox true`\n")
print(f"{datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ}, {os.uname().release}, {os.cpu_count()} cores; A = `{a}`, B = `{b}`; {rounds} rounds of {runs} runs each (A then B, then B then A, ...), a fresh daemon per round.\n")
if io == "1":
    print("Under I/O load: a writer rewrites a 256 MB file on the data root's filesystem throughout.\n")
print(f"Command: `{'IO_LOAD=1 ' if io == '1' else ''}bench/daemon/ab.sh {a} {b} {runs} {rounds}`\n")
print("| network | A median ms | B median ms | B / A |")
print("|---|---:|---:|---:|")
for v in ["default", "--network none"]:
    ma, mb = statistics.median(t[("A", v)]), statistics.median(t[("B", v)])
    print(f"| {v} | {ma:.1f} | {mb:.1f} | {mb / ma:.2f} |")
# The daemon's own part (its --trace-phases lines, crates/berth-engine/src/timing.rs).
ph = {}
for line in open(phase_log, errors="replace"):
    w, v, rest = line.split("|", 2)
    p = phases.parse(rest)
    if not p:
        continue
    ph.setdefault((w, v, p[0], "total"), []).append(p[1])
    for k, val in p[2].items():
        ph.setdefault((w, v, p[0], k), []).append(val)
print("\nThe daemon's part, medians in ms (A / B):\n")
print("| network | operation | total | phases |")
print("|---|---|---:|---|")
for v in ["default", "--network none"]:
    for op in ["create", "start", "exit", "rm"]:
        if ("A", v, op, "total") not in ph or ("B", v, op, "total") not in ph:
            continue
        # B's phases in B's order, then any only A has (a phase renamed or split).
        keys = [k for (w, vv, o, k) in ph if w == "B" and vv == v and o == op and k != "total"]
        keys += [k for (w, vv, o, k) in ph if w == "A" and vv == v and o == op and k != "total" and k not in keys]
        med = lambda w, k: f"{statistics.median(ph[(w, v, op, k)]):.2f}" if (w, v, op, k) in ph else "–"
        parts = ", ".join(f"{k} {med('A', k)} / {med('B', k)}" for k in keys)
        print(f"| {v} | {op} | {med('A', 'total')} / {med('B', 'total')} | {parts} |")
PY
cat "$out"
