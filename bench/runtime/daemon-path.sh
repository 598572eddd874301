#!/bin/sh
# The daemon's container-start path through berth's runtime library, phase by phase, on a
# bundle as the daemon makes it: the config.json berth's daemon wrote for
# `docker run busybox` (bench/runtime/daemon-config.json: Docker's default mounts, masked
# and read-only paths, the default seccomp profile, 14 capabilities, a joined network
# namespace, device rules), with `true` as the command and an overlay mount as the rootfs.
# The timing program (crates/berth-runtime/examples/daemon_path.rs) does what `berth shim`
# does per container: create (stdio on pipes, pid file), start, waitpid, delete.
#
#   bench/runtime/daemon-path.sh [RUNS] [LABEL]     (root)
#
# Writes bench/results/runtime-daemon-path-LABEL.json (medians, means, p10/p90 per phase)
# and, unless SKIP_CLI=1, runs `berth runtime run` / `runc run` / `crun run` on the same
# bundle with hyperfine into bench/results/runtime-daemon-bundle-LABEL.{md,json}.
# Needs: cargo build --release -p berth-runtime --example daemon_path (and -p berth for
# the CLI comparison).
set -eu
runs=${1:-200}
label=${2:-now}
top=$(cd "$(dirname "$0")/../.." && pwd)
prog=$top/target/release/examples/daemon_path
berth=$top/target/release/berth
[ -x "$prog" ] || { echo "build first: cargo build --release -p berth-runtime --example daemon_path" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-dp.XXXXXX)
ns=bench-dp-$$
cleanup() {
    set +e
    umount "$work/c/rootfs" 2>/dev/null
    umount "$work/roots" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    for h in /sys/fs/cgroup/*/bench-dp-$$; do [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
# State roots on a tmpfs, as /run is in production.
mkdir -p "$work/roots" "$work/c/rootfs" "$work/c/upper" "$work/c/work" "$work/bundle"
mount -t tmpfs -o size=32m tmpfs "$work/roots"
sh "$top/scripts/mkrootfs-busybox.sh" "$work/lower" >/dev/null
mount -t overlay overlay -o "lowerdir=$work/lower,upperdir=$work/c/upper,workdir=$work/c/work" "$work/c/rootfs"
echo "nameserver 127.0.0.1" >"$work/c/resolv.conf"
echo "benchhost" >"$work/c/hostname"
printf '127.0.0.1\tlocalhost\n' >"$work/c/hosts"
ip netns add "$ns"
sed -e "s|@ROOTFS@|$work/c/rootfs|g; s|@CONTAINER_DIR@|$work/c|g; s|@NETNS@|/run/netns/$ns|g" \
    -e "s|@CGROUP@|/bench-dp-$$/c|g; s|@HOSTNAME@|benchhost|g" \
    "$top/bench/runtime/daemon-config.json" >"$work/bundle/config.json"

results=$top/bench/results
mkdir -p "$results"
cmd="$prog \$BUNDLE \$ROOTS/lib $runs 10"
"$prog" "$work/bundle" "$work/roots/lib" "$runs" 10 >"$work/phases.json"
python3 - "$work/phases.json" "$results/runtime-daemon-path-$label.json" "$cmd" "$label" <<'PY'
import json, sys, os, subprocess, time
d = json.load(open(sys.argv[1]))
d["command"] = sys.argv[3]
d["label"] = sys.argv[4]
d["loadavg"] = open("/proc/loadavg").read().split()[:3]
d["kernel"] = os.uname().release
d["date"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
json.dump(d, open(sys.argv[2], "w"), indent=1)
print("| phase | median ms | mean ms | p10 | p90 |")
print("|:---|---:|---:|---:|---:|")
for k in ["create", "start", "wait", "delete", "total"]:
    v = d[k]
    print("| %s | %.2f | %.2f | %.2f | %.2f |" % (k, v["median"], v["mean"], v["p10"], v["p90"]))
print("load average:", " ".join(d["loadavg"]))
PY

if [ "${SKIP_CLI:-0}" != 1 ] && [ -x "$berth" ] && command -v hyperfine >/dev/null; then
    b=$work/bundle
    r=$work/roots
    ok=""
    for rt in "$berth runtime" runc crun; do
        if $rt --root "$r/w" run -b "$b" warmup >/dev/null 2>&1; then ok="$ok|$rt"; else echo "bench: '$rt run' fails on this bundle: left out" >&2; fi
    done
    set --
    case "$ok" in *"|$berth runtime"*) set -- "$@" -n 'berth runtime run' "$berth runtime --root $r/berth run -b $b bench" ;; esac
    case "$ok" in *"|runc"*) set -- "$@" -n 'runc run' "runc --root $r/runc run -b $b bench" ;; esac
    case "$ok" in *"|crun"*) set -- "$@" -n 'crun run' "crun --root $r/crun run -b $b bench" ;; esac
    hyperfine -N --warmup 5 --runs "$runs" "$@" \
        --export-markdown "$results/runtime-daemon-bundle-$label.md" --export-json "$results/runtime-daemon-bundle-$label.json" >/dev/null
    python3 - "$results/runtime-daemon-bundle-$label.json" >>"$results/runtime-daemon-bundle-$label.md" <<'PY'
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
        echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg); $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD)"
        echo
        echo "Command: \`bench/runtime/daemon-path.sh $runs $label\` (hyperfine -N --warmup 5 --runs $runs, \`<rt> --root \$ROOTS/<rt> run -b \$BUNDLE bench\`)"
    } >>"$results/runtime-daemon-bundle-$label.md"
    cat "$results/runtime-daemon-bundle-$label.md"
fi
