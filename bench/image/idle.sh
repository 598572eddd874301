#!/bin/sh
# What an open image store costs a process that does nothing else (the daemon holds one
# for its whole life): `image_tool idle ROOT` opens a store with N images and prints its
# VmRSS before and after the open; the resident set is also read from outside while it
# waits. Then a fresh store loads an archive (the ~320 MB bench archive when it exists,
# else a fixture) in the same process: RSS right after, and once the unpack workers
# have ended (35 s). Results go to bench/results/image-idle.md with the commands.
#
#   bench/image/idle.sh [N]
#
# Needs root (the fixture layers carry device nodes and xattrs) and
# `cargo build --release -p berth-image --example image_tool`.
set -eu
n=${1:-20}
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=$top/target/release/examples/image_tool
[ -x "$tool" ] || { echo "cargo build --release -p berth-image --example image_tool first" >&2; exit 1; }
fx=$top/fixtures
work=$(mktemp -d /tmp/bench-idle.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/store

# N images: the fixtures, then imports of a small rootfs tar, each with its own tag and
# a different layer.
"$tool" load "$root" "$fx/layers-docker-save.tar" >/dev/null
"$tool" load "$root" "$fx/layers-oci-gzip.tar" >/dev/null
mkdir "$work/rootfs"
i=3
while [ $i -le "$n" ]; do
    echo "$i" > "$work/rootfs/id"
    tar -C "$work/rootfs" -cf "$work/img.tar" .
    "$tool" import "$root" "$work/img.tar" "local/idle:$i" >/dev/null
    i=$((i + 1))
done
images=$("$tool" list "$root" | wc -l)

"$tool" idle "$root" 3 > "$work/out" &
pid=$!
sleep 1.5
outside=$(grep -E '^(VmRSS|VmHWM|RssAnon|RssFile|Threads)' /proc/$pid/status | tr -s ' \t' ' ' | paste -sd ';' -)
wait $pid
archive=/var/tmp/berth-bench-image/load.tar
[ -f "$archive" ] || archive=$fx/layers-docker-save.tar
"$tool" idle "$work/store2" 35 "$archive" > "$work/out2"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
{
    echo "# Idle image store"
    echo
    echo "$stamp, $(uname -r), berth $(git -C "$top" rev-parse --short HEAD); $images images"
    echo
    echo '```'
    cat "$work/out"
    echo "while idle: $outside"
    echo '```'
    echo
    echo "After a load ($(du -m "$archive" | cut -f1) MB archive) in a fresh store:"
    echo
    echo '```'
    cat "$work/out2"
    echo '```'
    echo
    echo "Command: \`bench/image/idle.sh $n\` (\`image_tool idle ROOT 3\`, the status read from /proc/PID/status after 1.5 s; \`image_tool idle ROOT2 35 ARCHIVE\`)."
} > "$top/bench/results/image-idle.md"
cat "$top/bench/results/image-idle.md"
