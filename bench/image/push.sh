#!/bin/sh
# Push of a locally made image (the ~320 MB, 4-layer docker-archive of make-archive.sh,
# loaded: uncompressed layers, no registry manifest) to an empty loopback registry
# (Debian's docker-registry), side by side in one hyperfine run:
#   berth:  image_tool manifest (ImageStore::ensure_manifest: gzip every layer, write the
#           schema2 manifest) then `berth registry push` of the result (upload);
#           and the first step alone, to show where the time goes;
#   docker: `docker push` through Debian's dockerd 20.10 (overlay2: re-tars each layer
#           from its files and gzips it);
#   skopeo: `skopeo copy docker-archive:... docker://...` (gzips the archive's layers).
# Every run starts from an empty registry and, for berth, a store without a manifest.
# Results go to bench/results/image-push.{md,json} with the command line.
#
#   bench/image/push.sh [RUNS]
#
# Needs root, `cargo build --release -p berth-image --example image_tool` and
# `cargo build --release -p berth`, and Debian's docker.io, docker-registry, skopeo,
# hyperfine. dockerd runs with its own data and exec roots and no bridge, iptables or
# masquerading. Stores live on a fresh journaled ext4 (see run.sh for why).
set -eu
runs=${1:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=$top/target/release/examples/image_tool
berth=$top/target/release/berth
for b in "$tool" "$berth"; do
    [ -x "$b" ] || { echo "$b missing: cargo build --release -p berth-image --example image_tool; cargo build --release -p berth" >&2; exit 1; }
done
for t in dockerd docker docker-registry skopeo hyperfine curl python3; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

base=$(mktemp -d /var/tmp/bench-push.XXXXXX)
archive=${BENCH_ARCHIVE:-/var/tmp/berth-bench-image/load.tar}
sock=$base/docker.sock
work=$base/fs
reg=$base/reg
cleanup() {
    if [ -f "$base/dockerd.pid" ]; then
        pid=$(cat "$base/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    [ -f "$reg/pid" ] && kill "$(cat "$reg/pid")" 2>/dev/null
    umount "$work" 2>/dev/null || true
    rm -rf "$base"
}
trap cleanup EXIT
truncate -s 16G "$base/fs.img"
mkfs.ext4 -q -F "$base/fs.img"
mkdir "$work"
mount -o loop "$base/fs.img" "$work"

[ -f "$archive" ] || { mkdir -p "$(dirname "$archive")"; sh "$top/bench/image/make-archive.sh" "$archive"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
regsh="sh $top/bench/registry/registry.sh $reg $port"
$regsh

dockerd --data-root "$work/docker" --exec-root "$base/docker-exec" --pidfile "$base/dockerd.pid" \
    -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --storage-driver=overlay2 >"$base/dockerd.log" 2>&1 &
i=0
until docker -H "unix://$sock" version >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "dockerd did not start: $(tail -5 "$base/dockerd.log")" >&2; exit 1; }
    sleep 0.1
done
d="docker -H unix://$sock"
$d load -q -i "$archive" >/dev/null
$d tag bench/load:1 "127.0.0.1:$port/bench/docker:1"
"$tool" load "$work/pristine" "$archive" >/dev/null

results=$top/bench/results
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
about="$(uname -r), $(nproc) cores, fresh journaled ext4 on a loop device; dockerd $(dockerd --version | sed 's/Docker version //'), $(skopeo --version), docker-registry $(dpkg-query -W -f '${Version}' docker-registry), berth $(git -C "$top" rev-parse --short HEAD)"
fresh="$regsh; rm -rf $work/berth; cp -a $work/pristine $work/berth; sync"
cmd="hyperfine --warmup 1 --runs $runs \
 --prepare '$fresh' -n 'berth push (gzip + manifest, upload)' '$tool manifest $work/berth bench/load:1 >/dev/null && $berth registry push -q --data-root $work/berth --image bench/load:1 127.0.0.1:$port/bench/berth:1' \
 --prepare '$fresh' -n 'berth gzip + manifest only' '$tool manifest $work/berth bench/load:1' \
 --prepare '$regsh; sync' -n 'docker push' '$d push -q 127.0.0.1:$port/bench/docker:1' \
 --prepare '$regsh; sync' -n 'skopeo copy docker-archive' 'skopeo --insecure-policy copy -q --dest-tls-verify=false docker-archive:$archive docker://127.0.0.1:$port/bench/skopeo:1'"
eval "$cmd --export-markdown $results/image-push.md --export-json $results/image-push.json"
{
    echo
    echo "A loaded ~$(du -m "$archive" | cut -f1) MB, 4-layer image (uncompressed layers, no manifest) pushed to an empty loopback registry each run. Command (bench/image/push.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$cmd" | sed "s#$top#\$REPO#g; s#$base#\$WORK#g"
    echo '```'
} >> "$results/image-push.md"
cat "$results/image-push.md"
