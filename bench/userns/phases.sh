#!/bin/bash
# Where --userns-remap's time goes in a container's life: one daemon started with
# --userns-remap and --trace-phases runs `docker run --rm busybox true` N times
# remapped and N times with --userns=host, alternating, and prints the median of every
# phase of create, start, exit and rm (crates/berth-engine/src/timing.rs) for each, with
# the end-to-end time. Makes (and removes) a user with a subordinate range of its own.
# Usage (root): bench/userns/phases.sh [runs]       prints a table; nothing is written
set -euo pipefail
runs=${1:-20}
top=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
user=berthbenchph start=2700000
strip_ranges() {
    for f in /etc/subuid /etc/subgid; do
        [ -f "$f" ] && { grep -v "^$user:" "$f" > "$f.bench" || true; cat "$f.bench" > "$f"; rm -f "$f.bench"; }
    done
}
id "$user" >/dev/null 2>&1 || useradd -r -M -s /bin/false "$user"
strip_ranges
echo "$user:$start:65536" >> /etc/subuid
echo "$user:$start:65536" >> /etc/subgid
name=benchuph net=29 berth_extra="--trace-phases --userns-remap $user"
. "$top/bench/lib/one-berth.sh"
trap 'one_berth_cleanup; strip_ranges; userdel "$user" 2>/dev/null || true' EXIT
variant_args() { case $1 in remap) echo "" ;; host) echo "--userns=host" ;; esac; }
for v in remap host; do
    for i in 1 2 3; do $docker -H "$B" run --rm $(variant_args $v) busybox true; done
done
: >"$work/berth.log"
for i in $(seq "$runs"); do
    for v in remap host; do
        s=$(date +%s%N); $docker -H "$B" run --rm $(variant_args $v) busybox true; e=$(date +%s%N)
        echo "$v $(( (e - s) / 1000 ))" >>"$work/e2e"
    done
done
sleep 0.5
python3 - "$work" "$runs" "$(git -C "$top" rev-parse --short HEAD)" <<'PY'
import re, statistics, sys
work, runs, rev = sys.argv[1], sys.argv[2], sys.argv[3]
# The runs alternate remapped, --userns=host: every create starts the next run.
seq, cur = [], []
for line in open(f"{work}/berth.log", errors="replace"):
    m = re.search(r"phases (\w+) \S+ ([\d.]+) ms:(.*)", line)
    if not m:
        continue
    if m.group(1) == "create" and cur:
        seq.append(cur)
        cur = []
    phases = dict(kv.split("=") for kv in m.group(3).split('"')[0].split())
    cur.append((m.group(1), float(m.group(2)), phases))
seq.append(cur)
e2e = {}
for line in open(f"{work}/e2e"):
    v, us = line.split()
    e2e.setdefault(v, []).append(int(us) / 1000)
print(f"berth {rev} (release), {runs} runs per variant, medians in ms (bench/userns/phases.sh {runs})\n")
for name, runs_of in (("remapped", seq[0::2]), ("--userns=host", seq[1::2])):
    key = "remap" if name == "remapped" else "host"
    print(f"## {name}: end to end {statistics.median(e2e[key]):.1f} ms\n")
    print("| operation | total | phases |")
    print("|---|---:|---|")
    for op in ["create", "start", "exit", "rm"]:
        tot, ph = [], {}
        for r in runs_of:
            for o, t, p in r:
                if o == op:
                    tot.append(t)
                    for k, val in p.items():
                        ph.setdefault(k, []).append(float(val))
        if tot:
            parts = ", ".join(f"{k} {statistics.median(vs):.2f}" for k, vs in ph.items())
            print(f"| {op} | {statistics.median(tot):.2f} | {parts} |")
    print()
PY
