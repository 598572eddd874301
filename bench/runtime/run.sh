#!/bin/sh
# Container lifecycle benchmark: create + start + wait + delete of `true` from one busybox
# bundle, with `berth runtime run`, runc and crun (Debian's packages), side by side in one
# hyperfine run. Results go to bench/results/runtime-lifecycle.{md,json} together with the
# exact command line.
#
#   bench/runtime/run.sh [RUNS]        (root; builds nothing: run `cargo build --release` first)
#
# Note: crun (1.8) refuses a hybrid cgroup v1 layout until hugetlb is mounted as a v1
# hierarchy. On such a host this script mounts it (mkdir /sys/fs/cgroup/hugetlb, then
# `mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`) and says so; it leaves the
# mount in place (unmounting a cgroup hierarchy others may use is not ours to do).
set -eu
runs=${1:-100}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
[ -x "$berth" ] || { echo "run 'cargo build --release' first ($berth missing)" >&2; exit 1; }
for t in runc crun hyperfine; do
    command -v $t >/dev/null || { echo "$t not found (scripts/setup.sh --test installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

if [ -d /sys/fs/cgroup/memory ] && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo \
   && grep -qw hugetlb /proc/cgroups; then
    echo "bench: mounting the hugetlb cgroup v1 hierarchy at /sys/fs/cgroup/hugetlb (crun needs it on this layout)"
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

work=$(mktemp -d /tmp/bench-rt.XXXXXX)
# State roots on a tmpfs for all three, as /run is in production; the bundle on disk.
mkdir "$work/roots"
mount -t tmpfs -o size=16m tmpfs "$work/roots"
trap 'umount "$work/roots"; rm -rf "$work"' EXIT
sh "$top/scripts/mkrootfs-busybox.sh" "$work/bundle/rootfs" >/dev/null
cd "$work/bundle"
"$berth" runtime spec
# Same config for all three: `true`, no terminal, the runc spec's namespaces and mounts.
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["linux"]["cgroupsPath"] = "/berth-bench/bench"
json.dump(c, open("config.json", "w"), indent=1)
PY
b=$work/bundle
r=$work/roots
for rt in "$berth runtime" runc crun; do
    $rt --root "$r/x" run -b "$b" warmup >/dev/null 2>&1 || { echo "bench: '$rt run' failed on the bundle" >&2; exit 1; }
done

results=$top/bench/results
mkdir -p "$results"
cmd="hyperfine -N --warmup 5 --runs $runs \
 -n 'berth runtime run' '$berth runtime --root $r/berth run -b $b bench' \
 -n 'runc run' 'runc --root $r/runc run -b $b bench' \
 -n 'crun run' 'crun --root $r/crun run -b $b bench'"
eval "$cmd --export-markdown $results/runtime-lifecycle.md --export-json $results/runtime-lifecycle.json"
for h in /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/berth-bench; do rmdir "$h" 2>/dev/null || true; done
# Medians and CPU time are steadier than means when the machine is shared.
python3 - "$results/runtime-lifecycle.json" >> "$results/runtime-lifecycle.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["results"]
base = d[0]["median"]
print()
print("| Command | Median [ms] | vs berth | User [ms] | System [ms] |")
print("|:---|---:|---:|---:|---:|")
for r in d:
    print("| `%s` | %.1f | %.2fx | %.1f | %.1f |" % (r["command"], r["median"] * 1000, r["median"] / base, r["user"] * 1000, r["system"] * 1000))
PY
{
    echo
    echo "Load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (a shared 2-core machine)."
    echo
    echo "Command (bench/runtime/run.sh $runs, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores):"
    echo
    echo '```'
    echo "$cmd" | sed "s|$work|\$WORK|g; s|$top|\$REPO|g"
    echo '```'
    echo
    echo "runc $(runc --version | head -1 | awk '{print $3}'), crun $(crun --version | head -1 | awk '{print $3}'), berth $(git -C "$top" rev-parse --short HEAD)"
} >> "$results/runtime-lifecycle.md"
echo "results: $results/runtime-lifecycle.md"
