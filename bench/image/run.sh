#!/bin/sh
# `load` and `save` of a ~320 MB, 4-layer docker-archive (bench/image/make-archive.sh:
# uncompressed layers cut from /usr, as `docker save` writes them):
#   berth: the image store library as the daemon calls it (examples/image_tool: open the
#          store, load the archive; default options, and again with durable_layers:
#          one syncfs before the image is recorded),
#   docker: `docker load` / `docker save` through Debian's dockerd 20.10 (overlay2),
# side by side in one hyperfine run each. berth's number has no HTTP hop; docker's
# includes its client streaming the file over the unix socket (a fraction of a second
# for 320 MB).
# Results go to bench/results/image-{load,save}.{md,json} with the command line.
#
#   bench/image/run.sh [RUNS]
#
# Both stores live on a fresh, journaled ext4 (a sparse loop-mounted image made for the
# run, as a host's /var/lib is): this VM's root filesystem is ext4 *without* a journal,
# where every inode allocation scans past the inodes freed in the last minutes, which
# makes any unpack after a deletion (each run's cleanup, the other engineers' builds)
# quadratically slow and the numbers meaningless.
#
# Needs root, `cargo build --release -p berth-image --example image_tool` first, and
# Debian's docker.io (dockerd, containerd), hyperfine, losetup and mkfs.ext4. dockerd runs
# with its own data and exec roots and no bridge, iptables or masquerading, so it
# touches nothing else.
set -eu
runs=${1:-5}
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=$top/target/release/examples/image_tool
[ -x "$tool" ] || { echo "run 'cargo build --release -p berth-image --example image_tool' first" >&2; exit 1; }
for t in dockerd docker hyperfine python3; do
    command -v $t >/dev/null || { echo "$t not found (apt-get install docker.io hyperfine)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

base=$(mktemp -d /var/tmp/bench-image.XXXXXX)
archive=${BENCH_ARCHIVE:-/var/tmp/berth-bench-image/load.tar}
sock=$base/docker.sock
work=$base/fs
cleanup() {
    if [ -f "$base/dockerd.pid" ]; then
        pid=$(cat "$base/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    umount "$work" 2>/dev/null || true
    rm -rf "$base"
}
trap cleanup EXIT
truncate -s 16G "$base/fs.img"
mkfs.ext4 -q -F "$base/fs.img"
mkdir "$work"
mount -o loop "$base/fs.img" "$work"

[ -f "$archive" ] || { mkdir -p "$(dirname "$archive")"; sh "$top/bench/image/make-archive.sh" "$archive"; }

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
results=$top/bench/results
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
about="$(uname -r), $(nproc) cores, fresh journaled $(findmnt -no FSTYPE -T "$work") on a loop device; dockerd $(dockerd --version | sed 's/Docker version //'), berth $(git -C "$top" rev-parse --short HEAD)"
size=$(du -m "$archive" | cut -f1)

# Each run starts from an empty store, the previous run's data deleted and written back.
settle="sync"
load="hyperfine --warmup 1 --runs $runs \
 --prepare 'rm -rf $work/berth; $settle' -n 'berth load' '$tool load $work/berth $archive' \
 --prepare 'rm -rf $work/berth; $settle' -n 'berth load (durable: syncfs)' 'BERTH_IMAGE_DURABLE=1 $tool load $work/berth $archive' \
 --prepare '$d rmi -f bench/load:1 >/dev/null 2>&1; $d image prune -af >/dev/null; $settle' -n 'docker load' '$d load -q -i $archive'"
eval "$load --export-markdown $results/image-load.md --export-json $results/image-load.json"
{
    echo
    echo "Archive: $size MB docker-archive, 4 uncompressed layers (bench/image/make-archive.sh). Command (bench/image/run.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$load" | sed "s#$work#\$WORK#g; s#$base#\$BASE#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/image-load.md"

# Save: the loaded image back to a file, both ways.
$tool load "$work/berth" "$archive" >/dev/null
$d load -q -i "$archive" >/dev/null
save="hyperfine --warmup 1 --runs $runs \
 --prepare 'rm -f $work/b.tar; sync' -n 'berth save' '$tool save $work/berth $work/b.tar bench/load:1' \
 --prepare 'rm -f $work/d.tar; sync' -n 'docker save' '$d save -o $work/d.tar bench/load:1'"
eval "$save --export-markdown $results/image-save.md --export-json $results/image-save.json"
{
    echo
    echo "The same image saved to a file (berth streams its stored layer blobs; dockerd 20.10 rebuilds each layer tar from its files and tar-split data). Command (bench/image/run.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$save" | sed "s#$work#\$WORK#g; s#$base#\$BASE#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/image-save.md"
cat "$results/image-load.md" "$results/image-save.md"
