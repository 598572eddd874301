#!/bin/sh
# Client benchmark against a live berth daemon: the docker CLI and `berth` doing the
# same everyday commands on the same daemon and image (container lifecycle included),
# so the ratio shows what the client adds end to end. Results:
# bench/results/cli-live.{md,json}, with the exact hyperfine command.
#
#   bench/cli/live.sh [RUNS]    (root; builds nothing: run `cargo build --release -p berth` first)
set -eu
runs=${1:-50}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=$(command -v docker || true)
[ -x "$berth" ] || { echo "run 'cargo build --release -p berth' first ($berth missing)" >&2; exit 1; }
[ -n "$docker" ] || { echo "the docker CLI is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine not found" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-cli-live.XXXXXX)
sock=$work/run/berth.sock
echo '{}' > "$work/daemon.json"
# Names and subnets of its own, so it runs beside anything else.
"$berth" daemon --data-root "$work/data" --exec-root "$work/run" -H "unix://$sock" \
    --bridge bbench0 --bip 172.27.251.1/24 --default-address-pool base=10.251.0.0/16,size=24 \
    --nft-table bbench0 --cgroup-parent /bbench0 --config-file "$work/daemon.json" >"$work/daemon.log" 2>&1 &
daemon=$!
cleanup() {
    "$berth" -H "unix://$sock" ps -aq 2>/dev/null | xargs -r "$berth" -H "unix://$sock" rm -f >/dev/null 2>&1 || true
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del bbench0 2>/dev/null || true
    nft delete table inet bbench0 2>/dev/null || true
    for c in /sys/fs/cgroup/*/bbench0 /sys/fs/cgroup/bbench0; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
i=0
while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
export DOCKER_HOST=unix://$sock DOCKER_CONFIG=$work/config
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf - . | "$berth" import -c 'CMD ["sh"]' - busybox:latest >/dev/null
"$berth" run -d --name resident busybox sleep 100000 >/dev/null

results=$top/bench/results
mkdir -p "$results"
cmd="hyperfine -N --warmup 3 --runs $runs \
 -n 'docker run --rm true' '$docker run --rm busybox true' \
 -n 'berth run --rm true' '$berth run --rm busybox true' \
 -n 'docker exec true' '$docker exec resident true' \
 -n 'berth exec true' '$berth exec resident true' \
 -n 'docker ps' '$docker ps' \
 -n 'berth ps' '$berth ps' \
 -n 'docker inspect' '$docker inspect resident' \
 -n 'berth inspect' '$berth inspect resident'"
eval "$cmd --export-markdown $results/cli-live.md --export-json $results/cli-live.json"
{
    echo
    echo "Command (bench/cli/live.sh $runs, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores), DOCKER_HOST=a berth daemon started by the script:"
    echo
    echo '```'
    echo "$cmd"
    echo '```'
    echo
    echo "$("$docker" --version), berth $(cd "$top" && git rev-parse --short HEAD)"
} >> "$results/cli-live.md"
