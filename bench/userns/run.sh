#!/bin/sh
# `docker run --rm busybox true` on one berth build, through two daemons side by side:
# one plain, one with --userns-remap (a user and subordinate range the script makes and
# removes). The difference is what remapping costs a container's life: making the user
# namespace, id-mapping the layers and the container's own files, the network
# namespace inside it. Results: bench/results/userns.md, with the exact hyperfine command.
#
#   bench/userns/run.sh [RUNS] [BERTH]   (root; BERTH defaults to target/release/berth,
#                                          else target/debug/berth)
set -eu
runs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${2:-$top/target/release/berth}
[ -x "$berth" ] || berth=$top/target/debug/berth
docker=$(command -v docker || true)
[ -x "$berth" ] || { echo "build berth first" >&2; exit 1; }
[ -n "$docker" ] || { echo "the docker CLI is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine not found" >&2; exit 1; }

user=berthbenchrm
start=2600000
work=$(mktemp -d /tmp/bench-userns.XXXXXX)
chmod 755 "$work"
pids=""
strip_ranges() {
    for f in /etc/subuid /etc/subgid; do
        [ -f "$f" ] && { grep -v "^$user:" "$f" > "$f.bench" || true; cat "$f.bench" > "$f"; rm -f "$f.bench"; }
    done
}
cleanup() {
    for n in plain remap; do
        s=$work/$n/run/berth.sock
        "$berth" -H "unix://$s" ps -aq 2>/dev/null | xargs -r "$berth" -H "unix://$s" rm -f >/dev/null 2>&1 || true
    done
    for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
    for b in bubench0 bubench1; do
        ip link del "$b" 2>/dev/null || true
        nft delete table inet "$b" 2>/dev/null || true
        for c in /sys/fs/cgroup/*/"$b" /sys/fs/cgroup/"$b"; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    done
    strip_ranges
    userdel "$user" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
id "$user" >/dev/null 2>&1 || useradd -r -M -s /bin/false "$user"
strip_ranges
echo "$user:$start:65536" >> /etc/subuid
echo "$user:$start:65536" >> /etc/subgid

daemon() { # name slot extra...
    n=$1 slot=$2; shift 2
    mkdir -p "$work/$n"
    echo '{}' > "$work/$n/daemon.json"
    "$berth" daemon --data-root "$work/$n/data" --exec-root "$work/$n/run" -H "unix://$work/$n/run/berth.sock" \
        --bridge "bubench$slot" --bip "172.27.24$slot.1/24" --default-address-pool "base=10.24$slot.0.0/16,size=24" \
        --nft-table "bubench$slot" --cgroup-parent "/bubench$slot" --config-file "$work/$n/daemon.json" "$@" >"$work/$n/daemon.log" 2>&1 &
    pids="$pids $!"
    i=0
    while [ ! -S "$work/$n/run/berth.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    tar -C "$work/rootfs" -cf - . | DOCKER_HOST=unix://$work/$n/run/berth.sock "$docker" import -c 'CMD ["sh"]' - busybox:latest >/dev/null
}
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs" >/dev/null
daemon plain 0
daemon remap 1 --userns-remap "$user"
export DOCKER_CONFIG=$work/config
# The remapped one really is remapped.
DOCKER_HOST=unix://$work/remap/run/berth.sock "$docker" run --rm busybox cat /proc/self/uid_map | grep -q "$start" \
    || { echo "the remapped daemon did not remap" >&2; exit 1; }

results=$top/bench/results
mkdir -p "$results"
cmd="hyperfine -N --warmup 3 --runs $runs \
 -n 'run --rm true (no remap)' 'env DOCKER_HOST=unix://$work/plain/run/berth.sock $docker run --rm busybox true' \
 -n 'run --rm true (--userns-remap)' 'env DOCKER_HOST=unix://$work/remap/run/berth.sock $docker run --rm busybox true'"
eval "$cmd --export-markdown $results/userns.md"
{
    echo
    echo "Command (bench/userns/run.sh $runs, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores shared with other work; berth binary: ${berth#$top/}):"
    echo
    echo '```'
    echo "$cmd"
    echo '```'
    echo
    echo "$("$docker" --version), berth $(cd "$top" && git rev-parse --short HEAD)"
} >> "$results/userns.md"
