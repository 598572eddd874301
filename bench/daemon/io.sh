#!/bin/bash
# Log and API paths of berth's daemon vs Debian's dockerd, side by side on this machine,
# both driven by the same docker CLI (issue 19's rows):
#   1. a container writing MB megabytes to stdout (json-file log), from `run -d` to exit
#   2. `docker logs` of that container (all of it, to /dev/null)
#   3. `_ping` on a kept-alive connection (curl, N requests on one connection)
#   1b. the same with a writer of 1 MB blocks (cat), rotation on: the log path's own
#      speed, with `--log-driver none` and `>/dev/null` in the container as the floor
#   2b. the logs endpoint read by curl: the daemon's side of row 2 without the CLI
# Usage (root): bench/daemon/io.sh [runs] [MB]      results → bench/results/daemon-io.md
set -euo pipefail
runs=${1:-5}
mb=${2:-200}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${BERTH_BIN:-$top/target/release/berth}
docker=${DOCKER:-/usr/local/bin/docker}
work=$(mktemp -d /var/tmp/berth-bench-io.XXXXXX)
. "$top/bench/lib/side-by-side.sh"

# 70-byte lines (69 characters and a newline), as a chatty program writes them.
writer="yes 012345678901234567890123456789012345678901234567890123456789abcdefghi | head -c $((mb * 1000000))"
out=$top/bench/results/daemon-io.md
{
echo "# berth daemon vs dockerd: logs and API paths"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); berth ${BERTH_REV:-$(git -C "$top" rev-parse --short HEAD)} ($(basename "$(dirname "$berth")") build), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives both."
echo "Command: \`bench/daemon/io.sh $runs $mb\`"
echo
echo "## A container writing $mb MB to stdout (70-byte lines), \`run -d\` to \`wait\`"
echo
} >"$out"
hyperfine -N --warmup 1 --runs "$runs" --export-markdown "$work/write.md" \
    -n berth "sh -c '$docker -H $B wait \$($docker -H $B run -d busybox sh -c \"$writer\")'" \
    -n dockerd "sh -c '$docker -H $D wait \$($docker -H $D run -d busybox sh -c \"$writer\")'" >/dev/null
cat "$work/write.md" >>"$out"

# A writer at pipe speed: busybox's `yes | head` costs ~1 s for 200 MB itself (a write
# per line), so the first row mostly measures the writer.
# (The loop's list is written out here: the command goes through two shells.)
blocks="yes 012345678901234567890123456789012345678901234567890123456789abcdefghi | head -c 1000000 >/b; for i in $(seq -s ' ' "$mb"); do cat /b; done"
for h in "$B" "$D"; do
    code=$($docker -H "$h" wait "$($docker -H "$h" run -d busybox sh -c "$blocks")")
    [ "$code" = 0 ] || { echo "the block writer failed on $h (exit $code)" >&2; exit 1; }
done
{
echo
echo "## A container writing $mb MB to stdout in 1 MB blocks, json-file with rotation (max-size 20m, max-file 3)"
echo
} >>"$out"
rot="--log-opt max-size=20m --log-opt max-file=3"
hyperfine -N --warmup 1 --runs "$runs" --export-markdown "$work/blocks.md" \
    -n "berth, >/dev/null in the container" "sh -c '$docker -H $B wait \$($docker -H $B run -d busybox sh -c \"($blocks) >/dev/null\")'" \
    -n "berth, --log-driver none" "sh -c '$docker -H $B wait \$($docker -H $B run -d --log-driver none busybox sh -c \"$blocks\")'" \
    -n "berth, json-file" "sh -c '$docker -H $B wait \$($docker -H $B run -d $rot busybox sh -c \"$blocks\")'" \
    -n "dockerd, json-file" "sh -c '$docker -H $D wait \$($docker -H $D run -d $rot busybox sh -c \"$blocks\")'" >/dev/null
cat "$work/blocks.md" >>"$out"

{
echo
echo "## \`docker logs\` of that container ($mb MB of output) to /dev/null"
echo
} >>"$out"
for h in "$B" "$D"; do
    $docker -H "$h" rm -f logsrc >/dev/null 2>&1 || true
    $docker -H "$h" run --name logsrc --log-opt max-size=1g busybox sh -c "$writer" >/dev/null
done
# Two commands, berth's and dockerd's, that each read the whole log: their table and
# their rates in MiB/s.
rate_row() {
    hyperfine -N --warmup 1 --runs "$runs" --export-markdown "$work/rate.md" --export-json "$work/rate.json" \
        -n berth "$1" -n dockerd "$2" >/dev/null
    cat "$work/rate.md" >>"$out"
    python3 - "$work/rate.json" "$mb" >>"$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
mb = int(sys.argv[2])
print()
print(" · ".join(f"{x['command']}: {mb * 1e6 / x['mean'] / 2**20:.0f} MiB/s" for x in r))
EOF
}
rate_row "sh -c '$docker -H $B logs logsrc >/dev/null'" "sh -c '$docker -H $D logs logsrc >/dev/null'"

{
echo
echo "## The logs endpoint of that container read by curl (no CLI), to /dev/null"
echo
} >>"$out"
q="logs?stdout=1&stderr=1"
rate_row "curl -s -o /dev/null --unix-socket $work/berth.sock http://d/v1.51/containers/logsrc/$q" \
    "curl -s -o /dev/null --unix-socket $work/docker.sock http://d/v1.41/containers/logsrc/$q"

n=2000
{
echo
echo "## \`_ping\` on a kept-alive connection ($n requests, one curl, one connection)"
echo
echo "| daemon | µs per request (median of 5) |"
echo "|---|---:|"
} >>"$out"
urls=$(for i in $(seq $n); do printf 'http://d/_ping '; done)
for name in berth dockerd; do
    sock=$work/berth.sock
    [ $name = dockerd ] && sock=$work/docker.sock
    t=$(for r in 1 2 3 4 5; do
        s=$(date +%s%N)
        # shellcheck disable=SC2086
        curl -s --unix-socket "$sock" $urls >/dev/null
        e=$(date +%s%N)
        echo $(((e - s) / n / 1000))
    done | sort -n | sed -n 3p)
    echo "| $name | $t |" >>"$out"
done
cat "$out"
