#!/bin/bash
# `docker ps` with N running containers (default 1000), berth vs Debian's dockerd, side
# by side, both driven by the same docker CLI; and the API alone (`GET /containers/json`
# by curl on the unix socket) to separate the daemon's share from the CLI's.
# Usage (root): bench/daemon/ps.sh [N] [runs]        results → bench/results/ps.md
set -euo pipefail
n=${1:-1000}
runs=${2:-20}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
work=$(mktemp -d /var/tmp/berth-bench-ps.XXXXXX)
. "$top/bench/lib/side-by-side.sh"

start_many() {
    local h=$1 i pids=()
    # Eight at a time: quicker than one by one, gentle enough for dockerd. (A bare
    # `wait` would wait for the daemons too: they are this shell's children.)
    for i in $(seq "$n"); do
        $docker -H "$h" run -d --network none busybox sleep 36000 >/dev/null &
        pids+=($!)
        if [ ${#pids[@]} -eq 8 ]; then wait "${pids[@]}"; pids=(); fi
    done
    [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
}
t0=$(date +%s); start_many "$B"; tb=$(( $(date +%s) - t0 ))
t0=$(date +%s); start_many "$D"; td=$(( $(date +%s) - t0 ))
rb=$($docker -H "$B" ps -q | wc -l); rd=$($docker -H "$D" ps -q | wc -l)
sleep 5
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/ps.md" \
    -n "berth: docker ps ($rb running)" "$docker -H $B ps" \
    -n "dockerd: docker ps ($rd running)" "$docker -H $D ps" >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/api.md" \
    -n "berth: GET /containers/json" "curl -s -o /dev/null --unix-socket $work/berth.sock http://x/v1.41/containers/json" \
    -n "dockerd: GET /containers/json" "curl -s -o /dev/null --unix-socket $work/docker.sock http://x/v1.41/containers/json" >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/floor.md" \
    -n "docker CLI alone: docker --version" "$docker --version" \
    -n "curl alone: GET /_ping" "curl -s -o /dev/null --unix-socket $work/berth.sock http://x/_ping" >/dev/null
out=$top/bench/results/ps.md
{
echo "# docker ps with $n running containers"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD) (release), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives both."
echo
echo "Command: \`bench/daemon/ps.sh $n $runs\` ($n × \`docker run -d --network none busybox sleep 36000\` in each daemon, 8 at a time: berth ${tb} s, dockerd ${td} s)."
echo
cat "$work/ps.md"
echo
echo "The daemon's share, without the docker CLI (curl on the unix socket, the whole list as JSON; API 1.41, the newest dockerd 20.10 speaks):"
echo
cat "$work/api.md"
echo
echo "The floor: the docker CLI's start-up, and one curl request."
echo
cat "$work/floor.md"
} >"$out"
cat "$out"
