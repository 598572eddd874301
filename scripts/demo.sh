#!/bin/sh
# README's first command ends here: start berth's daemon on scratch directories, make a
# busybox image locally (no download), and run containers from it with berth's CLI and,
# when it is installed, the real docker CLI.
#   scripts/setup.sh && cargo build --release && scripts/demo.sh      (as root)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
berth=${BERTH:-$top/target/release/berth}
[ -x "$berth" ] || { echo "demo: $berth not found: run 'cargo build --release' first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, cgroups, mounts, bridges)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
sock="$work/run/berth.sock"
daemon_pid=""
cleanup() {
    # Containers first (berth leaves them running when only the daemon stops).
    [ -S "$sock" ] && "$berth" -H "unix://$sock" rm -f $("$berth" -H "unix://$sock" ps -aq) >/dev/null 2>&1 || true
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    ip link del berthdemo0 2>/dev/null || true
    nft delete table inet berthdemo 2>/dev/null || true
    for d in /sys/fs/cgroup/*/berth-demo /sys/fs/cgroup/berth-demo; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$berth" daemon --data-root "$work/data" --exec-root "$work/run" -H "unix://$sock" \
    --bridge berthdemo0 --bip 172.31.254.1/24 --default-address-pool base=10.254.0.0/16,size=24 \
    --nft-table berthdemo --cgroup-parent /berth-demo >"$work/daemon.log" 2>&1 &
daemon_pid=$!
i=0
until "$berth" -H "unix://$sock" version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/daemon.log" >&2; exit 1; }; sleep 0.1
done
export BERTH_HOST="unix://$sock"

echo "== a busybox image, made locally from Debian's busybox-static"
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf - . | "$berth" import -c 'CMD ["sh"]' - busybox:latest
"$berth" images

echo "== berth run --rm busybox (isolated: own hostname, PID 1, network)"
"$berth" run --rm --name demo busybox sh -c 'echo "hostname: $(hostname)"; echo "pid 1:    $(cat /proc/1/cmdline | tr "\0" " ")"; ip -o -4 addr show eth0 | awk "{print \"address:  \" \$4}"'

echo "== berth build: a two-stage Dockerfile, built, run, then rebuilt from the cache"
mkdir -p "$work/app"
cat >"$work/app/Dockerfile" <<'DF'
FROM busybox AS build
ARG GREETING=hello
RUN mkdir /out && echo "$GREETING from a berth-built image" > /out/message
FROM busybox
COPY --from=build /out/message /message
CMD ["cat", "/message"]
DF
"$berth" build -t demo-app "$work/app"
"$berth" run --rm demo-app
"$berth" build -q -t demo-app "$work/app" >/dev/null && echo "(rebuilt from the cache)"

if command -v docker >/dev/null 2>&1; then
    echo "== the same daemon, driven by the real docker CLI"
    DOCKER_HOST="unix://$sock" docker run --rm busybox echo "hello from docker run on berth"
fi
