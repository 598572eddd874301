#!/bin/bash
# Soak: N × `docker run --rm busybox true` (default 10 000, bounded) against one berth
# daemon, alternating the default network, --network none and -p, with the daemon's
# RSS and the host's footprint sampled every `step` runs. A leak shows as growth between
# the first and the last sample: daemon RSS/anonymous memory, open descriptors, threads,
# and what a container leaves on the host when it is gone — mounts, cgroups (every v1
# controller and the v2 mount), veths and bridges, nft rules, shim processes, files in
# the data and exec roots.
# Usage (root): bench/daemon/soak.sh [runs] [step]      results → bench/results/soak.md
set -euo pipefail
runs=${1:-10000}
step=${2:-500}
top=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
name=soakberth net=25
. "$top/bench/lib/one-berth.sh"

field() { awk -v k="$1:" '$1==k{print $2}' /proc/$bpid/status; }
count_cgroups() { find /sys/fs/cgroup/*/soakberth -mindepth 1 -type d 2>/dev/null | wc -l; }
count_mounts() { grep -c " $work" /proc/self/mountinfo || true; }
count_veths() { ip -o link show master soakberth0 2>/dev/null | wc -l; }
count_bridges() { ip -o link show type bridge | grep -c soakberth || true; }
count_rules() { nft -a list table inet soakberth 2>/dev/null | grep -c 'handle' || true; }
count_shims() { pgrep -fc "berth shim.* $work" || true; }  # the zygote and the shims it forked
count_files() { find "$work/data" "$work/run" -xdev 2>/dev/null | wc -l; }
sample() {
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "$(( $(field VmRSS) / 1024 ))" "$(( $(field RssAnon) / 1024 ))" "$(ls /proc/$bpid/fd | wc -l)" "$(field Threads)" \
        "$(count_mounts)" "$(count_cgroups)" "$(count_veths)" "$(count_bridges)" "$(count_rules)" "$(count_shims)" "$(count_files)"
}
out=$top/bench/results/soak.md
table=$work/table.md
start=$(date +%s)
# The first run makes the default bridge and warms what stays warm; the baseline is
# taken after it (and after the same 12 s of quiet as the last sample).
$docker -H "$B" run --rm busybox true
sleep 12
sample 1 >"$table"
failures=0
for i in $(seq 2 "$runs"); do
    case $((i % 3)) in
        0) args=() ;;
        1) args=(--network none) ;;
        2) args=(-p 127.0.0.1:18999:80) ;;
    esac
    $docker -H "$B" run --rm "${args[@]}" busybox true || failures=$((failures + 1))
    if [ $((i % step)) -eq 0 ] && [ "$i" -ne "$runs" ]; then sample "$i" >>"$table"; fi
done
# Let the daemon go quiet (it gives back what work faulted in after ~10 s idle).
sleep 12
sample "$runs (12 s idle)" >>"$table"
secs=$(( $(date +%s) - start ))
{
echo "# Soak: $runs × docker run --rm"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD) (release build); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives it."
echo
echo "Command: \`bench/daemon/soak.sh $runs $step\` — \`docker run --rm busybox true\` in turn with the"
echo "default bridge, \`--network none\` and \`-p 127.0.0.1:18999:80\`; $runs runs in ${secs} s"
echo "($(( secs * 1000 / runs )) ms each with the CLI), $failures failed. Each row is a sample after that many runs;"
echo "the host columns count what berth has on the host at that moment, with no container"
echo "running: mounts under its roots, cgroups under its parent (all controllers), veths on"
echo "its bridge, its bridges, rules in its nft table, its shim processes (the zygote included), files in its data and"
echo "exec roots. The first and last samples are taken after 12 s without a request (the daemon"
echo "gives back what work faulted in); the ones between, in the middle of the loop."
echo
echo "| runs | RSS MB | anon MB | fds | threads | mounts | cgroups | veths | bridges | nft rules | shims | files |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
cat "$table"
} >"$out"
cat "$out"
