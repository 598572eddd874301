#!/bin/bash
# Everyday API operations of berth's daemon vs Debian's dockerd, side by side on this
# machine, both driven by the same docker CLI (issue 19's rows):
#   exec into a running container · volume create + rm · network create + rm
# with `docker --version` (the CLI's own start) as the floor of each.
# Usage (root): bench/daemon/ops.sh [runs]        results → bench/results/daemon-ops.md
set -euo pipefail
runs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${BERTH_BIN:-$top/target/release/berth}
docker=${DOCKER:-/usr/local/bin/docker}
work=$(mktemp -d /var/tmp/berth-bench-ops.XXXXXX)
. "$top/bench/lib/side-by-side.sh"

for h in "$B" "$D"; do $docker -H "$h" run -d --name target busybox sleep 36000 >/dev/null; done
out=$top/bench/results/daemon-ops.md
{
echo "# berth daemon vs dockerd: exec, volumes, networks"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); berth ${BERTH_REV:-$(git -C "$top" rev-parse --short HEAD)} ($(basename "$(dirname "$berth")") build), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives both."
echo "Command: \`bench/daemon/ops.sh $runs\`"
} >"$out"
row() {
    local title=$1 cb=$2 cd=$3
    printf '\n## %s\n\n' "$title" >>"$out"
    hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/row.md" \
        -n berth "$cb" -n dockerd "$cd" >/dev/null
    cat "$work/row.md" >>"$out"
}
row "\`docker exec target true\` (a running container)" \
    "$docker -H $B exec target true" "$docker -H $D exec target true"
row "\`docker volume create\` + \`docker volume rm\`" \
    "sh -c '$docker -H $B volume create benchvol >/dev/null && $docker -H $B volume rm benchvol >/dev/null'" \
    "sh -c '$docker -H $D volume create benchvol >/dev/null && $docker -H $D volume rm benchvol >/dev/null'"
row "\`docker network create\` + \`docker network rm\`" \
    "sh -c '$docker -H $B network create benchnet >/dev/null && $docker -H $B network rm benchnet >/dev/null'" \
    "sh -c '$docker -H $D network create benchnet >/dev/null && $docker -H $D network rm benchnet >/dev/null'"
printf '\n## The floor: the docker CLI alone\n\n' >>"$out"
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/row.md" -n "docker --version" "$docker --version" >/dev/null
cat "$work/row.md" >>"$out"
cat "$out"
