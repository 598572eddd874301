#!/bin/bash
# Where `docker run --rm busybox true` spends its time inside berth's daemon: runs it
# N times (default network, --network none, -p) against a daemon started with
# --trace-phases and reports the median of every phase of create, start, exit and rm
# (the lines crates/berth-engine/src/timing.rs logs), next to the end-to-end time.
# Usage (root): bench/daemon/phases.sh [runs]        results → bench/results/phases.md
set -euo pipefail
runs=${1:-50}
top=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
name=benchberth net=27 berth_extra=--trace-phases
. "$top/bench/lib/one-berth.sh"
for v in default none publish; do
    case $v in
        default) args="" ;;
        none) args="--network none" ;;
        publish) args="-p 127.0.0.1:18080:80" ;;
    esac
    # Warm-up, then the measured runs; the daemon log is cut per variant.
    for i in 1 2 3; do $docker -H "$B" run --rm $args busybox true; done
    : >"$work/berth.log"
    for i in $(seq "$runs"); do
        s=$(date +%s%N); $docker -H "$B" run --rm $args busybox true; e=$(date +%s%N)
        echo "e2e $(( (e - s) / 1000 ))" >>"$work/e2e-$v"
    done
    sleep 0.5
    cp "$work/berth.log" "$work/log-$v"
done
PYTHONPATH="$top/bench/lib" python3 - "$work" "$runs" "$(git -C "$top" rev-parse --short HEAD)" >"$top/bench/results/phases.md" <<'PY'
import statistics, sys
import phases
work, runs, rev = sys.argv[1], sys.argv[2], sys.argv[3]
print("# Where `docker run --rm busybox true` spends its time in berth's daemon\n")
print(f"berth {rev} (release), {runs} runs per variant, medians in ms; the phases come from the daemon's")
print("`--trace-phases` lines (crates/berth-engine/src/timing.rs), end to end is the docker CLI's wall time.\n")
print("Command: `bench/daemon/phases.sh " + runs + "`\n")
for v in ["default", "none", "publish"]:
    e2e = [int(l.split()[1]) / 1000 for l in open(f"{work}/e2e-{v}")]
    print(f"## {v}: end to end {statistics.median(e2e):.1f} ms\n")
    ops = {}
    for line in open(f"{work}/log-{v}"):
        p = phases.parse(line)
        if not p:
            continue
        op = ops.setdefault(p[0], {"total": [], "phases": {}})
        op["total"].append(p[1])
        for k, val in p[2].items():
            op["phases"].setdefault(k, []).append(val)
    print("| operation | total | phases |")
    print("|---|---:|---|")
    for name in ["create", "start", "exit", "rm"]:
        if name not in ops:
            continue
        o = ops[name]
        parts = ", ".join(f"{k} {statistics.median(vs):.2f}" for k, vs in o["phases"].items())
        print(f"| {name} | {statistics.median(o['total']):.2f} | {parts} |")
    print()
PY
cat "$top/bench/results/phases.md"
