#!/bin/sh
# The OCI runtime alone: run a busybox container with berth's own runtime and
# show that it is isolated (its own hostname, PID 1, only its own processes, root inside).
#   scripts/setup.sh && cargo build --release && scripts/demo-runtime.sh      (as root)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
berth=${BERTH:-$top/target/release/berth}
[ -x "$berth" ] || { echo "demo: $berth not found: run 'cargo build --release' first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, cgroups, mounts)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
id="demo-$$"
cleanup() {
    "$berth" runtime --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

sh "$top/scripts/mkrootfs-busybox.sh" "$work/bundle/rootfs"
cd "$work/bundle"
"$berth" runtime spec
sed -i 's/"terminal": true/"terminal": false/; s/"hostname": "runc"/"hostname": "berth-demo"/' config.json
# process.args: a shell script that reports what the container sees.
sed -i 's|"sh"$|"sh", "-c", "echo \\"hostname: $(hostname)\\"; echo \\"whoami:   $(id)\\"; echo processes:; ps -o pid,user,args; echo mounts: $(wc -l < /proc/mounts) visible; touch /x 2>/dev/null \|\| echo \\"rootfs:   read-only\\""|' config.json
grep -q '"-c"' config.json || { echo "demo: could not edit config.json" >&2; exit 1; }

echo "== berth runtime run (host pid $$, host hostname $(hostname))"
"$berth" runtime --root "$work/state" run --bundle "$work/bundle" "$id"
echo "== exit status $?; container deleted: $("$berth" runtime --root "$work/state" list -q | wc -l) left"
