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
#   BASELINE=/path/to/older/daemon_path bench/runtime/daemon-path.sh [RUNS] [LABEL]
#
# Writes bench/results/runtime-daemon-path-LABEL.{md,json} (medians, means, p10/p90 per
# phase). With BASELINE (the same program built at an older commit) both builds run in
# alternating rounds (ROUNDS, default 5) on the same bundle and the table shows the ratio;
# a third build-less pass measures the current build with its seccomp cache unusable.
# Unless SKIP_CLI=1 (SKIP_LIB=1 skips the library part), it also runs `berth runtime run` / `runc run` / `crun run` on the
# same bundle with hyperfine into bench/results/runtime-daemon-bundle-LABEL.{md,json}.
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
# Rounds alternate between the builds (when BASELINE is set), so both see the same load.
rounds=${ROUNDS:-5}
if [ "${SKIP_LIB:-0}" != 1 ]; then
per=$(( (runs + rounds - 1) / rounds ))
: >"$work/samples"
for i in $(seq "$rounds"); do
    for which in ${BASELINE:+baseline} current cold; do
        p=$prog
        [ "$which" = baseline ] && p=$BASELINE
        rm -rf "$work/roots/lib"
        if [ "$which" = cold ]; then
            # An unusable seccomp cache: every create compiles its filter (a first start).
            mkdir -p "$work/roots/lib/root" && : >"$work/roots/lib/root/.seccomp"
        fi
        printf '%s ' "$which" >>"$work/samples"
        "$p" "$work/bundle" "$work/roots/lib" "$per" 5 >>"$work/samples"
    done
done
cmd="bench/runtime/daemon-path.sh $runs $label${BASELINE:+ (BASELINE=<daemon_path built at the baseline commit>)}, ROUNDS=$rounds"
python3 - "$work/samples" "$results/runtime-daemon-path-$label" "$cmd" "$label" "$(git -C "$top" rev-parse --short HEAD)" <<'PY'
import json, sys, os, time, statistics
pooled = {}
for line in open(sys.argv[1]):
    which, data = line.split(" ", 1)
    d = json.loads(data)["samples"]
    for phase, v in d.items():
        pooled.setdefault(which, {}).setdefault(phase, []).extend(v)
def summ(v):
    v = sorted(v)
    at = lambda q: v[round((len(v) - 1) * q)]
    return {"median": at(0.5), "mean": statistics.mean(v), "p10": at(0.1), "p90": at(0.9), "n": len(v)}
out = {w: {p: summ(v) for p, v in ph.items()} for w, ph in pooled.items()}
out.update(command=sys.argv[3], label=sys.argv[4], commit=sys.argv[5], loadavg=open("/proc/loadavg").read().split()[:3],
           kernel=os.uname().release, date=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()))
json.dump(out, open(sys.argv[2] + ".json", "w"), indent=1)
phases = ["create", "start", "wait", "delete", "total"]
with open(sys.argv[2] + ".md", "w") as md:
    if "baseline" in out:
        md.write("| phase | baseline median ms | current median ms | baseline / current | current p10-p90 |\n|:---|---:|---:|---:|---:|\n")
        for k in phases:
            b, c = out["baseline"][k], out["current"][k]
            md.write("| %s | %.2f | %.2f | %.2fx | %.2f-%.2f |\n" % (k, b["median"], c["median"], b["median"] / c["median"], c["p10"], c["p90"]))
    else:
        md.write("| phase | median ms | mean ms | p10 | p90 |\n|:---|---:|---:|---:|---:|\n")
        for k in phases:
            v = out["current"][k]
            md.write("| %s | %.2f | %.2f | %.2f | %.2f |\n" % (k, v["median"], v["mean"], v["p10"], v["p90"]))
    c = out["cold"]["create"]
    md.write("\nFirst start of a profile (seccomp cache unusable, the filter compiled by this create): create median %.2f ms (p10 %.2f, p90 %.2f).\n" % (c["median"], c["p10"], c["p90"]))
    md.write("\n%d runs per build, load average after: %s, %s, berth %s, %s\n\nCommand: `%s`\n" % (
        out["current"]["total"]["n"], " ".join(out["loadavg"]), out["kernel"], out["commit"], out["date"], out["command"]))
print(open(sys.argv[2] + ".md").read())
PY
fi

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
