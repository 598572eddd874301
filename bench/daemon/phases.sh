#!/bin/bash
# Where `docker run --rm busybox true` spends its time inside berth's daemon: runs it
# N times (default network, --network none, -p) against a daemon started with
# --trace-phases and reports the median of every phase of create, start, exit and rm
# (the lines crates/berth-engine/src/timing.rs logs), next to the end-to-end time.
# Usage (root): bench/daemon/phases.sh [runs]        results → bench/results/phases.md
set -euo pipefail
runs=${1:-50}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
[ -x "$berth" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d /var/tmp/berth-bench-phases.XXXXXX)
B="unix://$work/berth.sock"
cleanup() {
    set +e
    $docker -H "$B" rm -f $($docker -H "$B" ps -aq 2>/dev/null) >/dev/null 2>&1
    [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null
    sleep 1
    ip link del benchberth0 2>/dev/null
    nft delete table inet benchberth 2>/dev/null
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/benchberth; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
"$berth" daemon --data-root "$work/data" --exec-root "$work/run" -H "$B" --bridge benchberth0 \
    --bip 172.27.0.1/16 --default-address-pool base=10.227.0.0/16,size=24 --nft-table benchberth \
    --cgroup-parent /benchberth --trace-phases >"$work/berth.log" 2>&1 &
bpid=$!
for i in $(seq 100); do $docker -H "$B" version >/dev/null 2>&1 && break; sleep 0.1; done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf - . | $docker -H "$B" import -c 'CMD ["sh"]' - busybox:latest >/dev/null
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
python3 - "$work" "$runs" "$(git -C "$top" rev-parse --short HEAD)" >"$top/bench/results/phases.md" <<'PY'
import re, statistics, sys
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
        m = re.search(r"phases (\w+) \S+ ([\d.]+) ms:(.*)", line)
        if not m:
            continue
        op = ops.setdefault(m.group(1), {"total": [], "phases": {}})
        op["total"].append(float(m.group(2)))
        # (The daemon's text log quotes the message: stop at the quote.)
        for kv in m.group(3).split('"')[0].split():
            k, val = kv.split("=")
            op["phases"].setdefault(k, []).append(float(val))
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
