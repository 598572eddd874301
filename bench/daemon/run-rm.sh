#!/bin/bash
# `run --rm busybox true` end to end, the issue-19 goals' own figures: the docker CLI
# against berth and against dockerd, with the default network and with --network none,
# and berth's own CLI against berth, back to back (as a script's loop runs them). Also
# each CLI's own floor (`version`: its start and one request). Medians, p10 and p90.
# (Spacing the runs by a sleep made every figure slower here, `version` too: a vCPU
# woken from idle; so it does not isolate the network teardown's share, see
# docs/performance.md.)
# With IO_LOAD=1 a writer keeps rewriting a 256 MB file on the daemons' filesystem
# throughout (what a build, a database or a log leaves dirty), so every sync pays for it.
# Usage (root): [IO_LOAD=1] bench/daemon/run-rm.sh [runs]
#   results → bench/results/run-rm.md (run-rm-io-load.md with IO_LOAD=1)
set -euo pipefail
runs=${1:-40}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
work=$(mktemp -d /var/tmp/berth-bench-runrm.XXXXXX)
. "$top/bench/lib/side-by-side.sh"

cmds=(
    "docker → berth" "$docker -H $B run --rm busybox true"
    "docker → berth, --network none" "$docker -H $B run --rm --network none busybox true"
    "docker → dockerd" "$docker -H $D run --rm busybox true"
    "docker → dockerd, --network none" "$docker -H $D run --rm --network none busybox true"
    "berth CLI → berth" "$berth -H $B run --rm busybox true"
    "berth CLI → berth, --network none" "$berth -H $B run --rm --network none busybox true"
    "docker version (the docker CLI's floor)" "$docker -H $B version"
    "berth version (the berth CLI's floor)" "$berth -H $B version"
)
out=$top/bench/results/run-rm.md
if [ "${IO_LOAD:-0}" = 1 ]; then
    out=$top/bench/results/run-rm-io-load.md
    (while true; do dd if=/dev/zero of="$work/ballast" bs=1M count=256 status=none; done) &
    writer=$!
    extra_cleanup() { kill "$writer" 2>/dev/null; }
fi
args=()
for ((i = 0; i < ${#cmds[@]}; i += 2)); do args+=(-n "${cmds[i]}" "${cmds[i+1]}"); done
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/b2b.json" "${args[@]}" >/dev/null
python3 - "$work" "$runs" "$(git -C "$top" rev-parse --short HEAD)" "$(dockerd --version | awk '{print $3}' | tr -d ,)" \
    "$($docker version -f '{{.Client.Version}}' 2>/dev/null)" "${IO_LOAD:-0}" >"$out" <<'PY'
import json, sys, datetime, os
work, runs, rev, dv, cli, io = sys.argv[1:7]
def load(f):
    out = {}
    for r in json.load(open(f"{work}/{f}"))["results"]:
        t = sorted(r["times"])
        out[r["command"]] = (r["median"] * 1000, t[len(t) // 10] * 1000, t[len(t) * 9 // 10] * 1000)
    return out
b2b = load("b2b.json")
print("# `run --rm busybox true`: berth vs dockerd, docker CLI and berth's own\n")
print(f"{datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ}, {os.uname().release}, {os.cpu_count()} cores; berth {rev} (release), dockerd {dv}, docker CLI {cli}; {runs} runs each.\n")
if io == "1":
    print("Under I/O load: a writer rewrites a 256 MB file on the daemons' filesystem throughout.\n")
print(f"Command: `{'IO_LOAD=1 ' if io == '1' else ''}bench/daemon/run-rm.sh " + runs + "` (hyperfine -N --warmup 3, runs back to back)\n")
print("| what | median ms | p10–p90 ms |")
print("|---|---:|---:|")
for name, a in b2b.items():
    print(f"| {name} | {a[0]:.1f} | {a[1]:.1f}–{a[2]:.1f} |")
print()
for k in ["", ", --network none"]:
    r = b2b[f"docker → dockerd{k}"][0] / b2b[f"docker → berth{k}"][0]
    print(f"- dockerd / berth{k or ' (default network)'}: **{r:.1f}x** by the median")
PY
cat "$out"
