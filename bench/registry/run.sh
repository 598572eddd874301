#!/bin/sh
# Pull and push of a ~320 MB, 4-layer image (bench/registry/make-image.sh) from a
# loopback registry (Debian's docker-registry): `berth registry pull` into a fresh data
# root against `docker pull` through Debian's dockerd (20.10, overlay2), side by side in
# one hyperfine run; then push of the pulled image to an empty registry, both ways.
# End to end: download, verify, unpack (pull); read, upload, commit (push).
# Results go to bench/results/registry-{pull,push}.{md,json} with the command line.
#
#   bench/registry/run.sh [RUNS]
#
# Needs root, `cargo build --release -p berth` first, and Debian's docker.io (dockerd,
# containerd), docker-registry, skopeo, pigz and hyperfine. dockerd runs with its own data
# and exec roots and no bridge, iptables or masquerading, so it touches nothing else.
#
# Both data roots live on a fresh, journaled ext4 (an 8 GiB sparse file on a loop device):
# this VM's root filesystem is ext4 without a journal, where creating thousands of files
# right after deleting thousands (what every run does) goes through ext4's
# recently_deleted() inode scan, which then dominates both tools' times. BENCH_FS=host
# runs on the host filesystem instead.
set -eu
runs=${1:-5}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
[ -x "$berth" ] || { echo "run 'cargo build --release -p berth' first ($berth missing)" >&2; exit 1; }
for t in dockerd docker docker-registry skopeo pigz hyperfine curl python3; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d /tmp/bench-reg.XXXXXX)
image=${BENCH_IMAGE_DIR:-/var/tmp/berth-bench-registry-image}
sock=$work/docker.sock
cleanup() {
    if [ -f "$work/dockerd.pid" ]; then
        pid=$(cat "$work/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    for r in src dst; do [ -f "$work/$r/pid" ] && kill "$(cat "$work/$r/pid")" 2>/dev/null; done
    if mountpoint -q "$work/fs"; then umount "$work/fs"; fi
    rm -rf "$work"
}
trap cleanup EXIT

fs=$work/fs
mkdir -p "$fs"
if [ "${BENCH_FS:-loop}" = loop ]; then
    truncate -s 8G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img"
    mount -o loop "$work/fs.img" "$fs"
    fsdesc="fresh journaled ext4 on a loop device"
else
    fsdesc="host filesystem ($(stat -f -c %T "$work"))"
fi

[ -f "$image/index.json" ] || sh "$top/bench/registry/make-image.sh" "$image"

src_port=$(free_port)
dst_port=$(free_port)
sh "$top/bench/registry/registry.sh" "$work/src" "$src_port"
ref=127.0.0.1:$src_port/bench/big:1
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$image:bench" "docker://$ref"

dockerd --data-root "$fs/docker" --exec-root "$work/docker-exec" --pidfile "$work/dockerd.pid" \
    -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --storage-driver=overlay2 >"$work/dockerd.log" 2>&1 &
i=0
until docker -H "unix://$sock" version >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "dockerd did not start: $(tail -5 "$work/dockerd.log")" >&2; exit 1; }
    sleep 0.1
done
d="docker -H unix://$sock"
b="$berth registry pull -q --data-root $fs/berth"
results=$top/bench/results
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
about="$(uname -r), $(nproc) cores; dockerd $(dockerd --version | sed 's/Docker version //'), docker-registry $(docker-registry --version | awk '{print $3}'), unpigz $(pigz --version 2>&1 | awk '{print $2}'), berth $(git -C "$top" rev-parse --short HEAD)"

# Every run starts from nothing on disk and with the page cache written back (sync),
# so one run's writeback does not land in the next one's time.
pull="hyperfine --warmup 1 --runs $runs \
 --prepare 'rm -rf $fs/berth; sync' -n 'berth registry pull' '$b $ref' \
 --prepare 'rm -rf $fs/berth; sync' -n 'berth registry pull --no-sync' '$b --no-sync $ref' \
 --prepare '$d rmi -f $ref >/dev/null 2>&1; $d image prune -af >/dev/null; sync' -n 'docker pull' '$d pull -q $ref'"
eval "$pull --export-markdown $results/registry-pull.md --export-json $results/registry-pull.json"
{
    echo
    echo "berth syncs each unpacked layer to disk before recording it (berth-image's durable layers); --no-sync skips that, as dockerd's overlay2 does."
    echo
    echo "Image: 4 gzip layers, $(awk '{s+=$2} END {printf "%.0f", s/1e6}' "$image/layers.txt") MB compressed (bench/registry/make-image.sh). Data roots on a $fsdesc. Command (bench/registry/run.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$pull" | sed "s#$work#\$WORK#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/registry-pull.md"

# Push: the pulled image to an empty registry each time (no layer exists there yet).
$b "$ref" >/dev/null
$d pull -q "$ref" >/dev/null
to=127.0.0.1:$dst_port/bench/pushed:1
$d tag "$ref" "$to"
fresh="sh $top/bench/registry/registry.sh $work/dst $dst_port; sync"
push="hyperfine --warmup 1 --runs $runs \
 --prepare '$fresh' -n 'berth registry push' '$berth registry push -q --data-root $fs/berth --image $ref $to' \
 --prepare '$fresh' -n 'docker push' '$d push -q $to'"
eval "$push --export-markdown $results/registry-push.md --export-json $results/registry-push.json"
{
    echo
    echo "Same image, pushed to an empty registry each run (berth pushes the blobs it pulled; dockerd 20.10 re-tars and re-compresses each layer). Command (bench/registry/run.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$push" | sed "s#$work#\$WORK#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/registry-push.md"
