#!/bin/bash
# berth's daemon vs Debian's dockerd (docker.io), side by side on this machine, both
# driven by the same docker CLI:
#   1. `docker run --rm busybox true` end to end (hyperfine, interleaved)
#   2. daemon RSS idle; shim RSS per running container (berth shim vs containerd-shim)
#   3. `docker ps` with N running containers
#   4. N containers started concurrently
# Usage (root): bench/daemon/run.sh [runs] [containers]     results → bench/results/daemon.md
# It installs docker.io if missing, runs dockerd on its own roots and socket with
# --iptables=false (no host firewall changes), and removes everything afterwards.
set -euo pipefail
runs=${1:-30}
n=${2:-200}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
work=$(mktemp -d /var/tmp/berth-bench-daemon.XXXXXX)
. "$top/bench/lib/side-by-side.sh"

out=$top/bench/results/daemon.md
{
echo "# berth daemon vs dockerd"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), runc $(runc --version | head -1 | awk '{print $3}'); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives both."
echo
echo "## docker run --rm busybox true"
echo
} >"$out"
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/run.md" \
    -n berth "$docker -H $B run --rm busybox true" \
    -n dockerd "$docker -H $D run --rm busybox true" >/dev/null
cat "$work/run.md" >>"$out"
echo >>"$out"
echo "Command: \`hyperfine -N --warmup 3 --runs $runs '$docker -H unix://…/berth.sock run --rm busybox true' '$docker -H unix://…/docker.sock run --rm busybox true'\`" >>"$out"

rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
anon() { awk '/RssAnon/{print $2}' /proc/$1/status; }
pss() { awk '/^Pss:/{s+=$2} END{print s}' /proc/$1/smaps_rollup 2>/dev/null || echo 0; }
for h in "$B" "$D"; do $docker -H "$h" run --rm busybox true; $docker -H "$h" ps >/dev/null; done
b_busy=$(rss $bpid); d_busy=$(( $(rss $dpid) + $(rss $(pgrep -f "containerd --config $work" | head -1) 2>/dev/null || echo 0) ))
# Idle: 12 s without a request (berth gives back what the last work faulted in after ~10 s).
sleep 12
b_idle=$(rss $bpid); d_idle=$(( $(rss $dpid) + $(rss $(pgrep -f "containerd --config $work" | head -1) 2>/dev/null || echo 0) ))
b_anon=$(anon $bpid); d_anon=$(( $(anon $dpid) + $(anon $(pgrep -f "containerd --config $work" | head -1) 2>/dev/null || echo 0) ))
for h in "$B" "$D"; do for i in $(seq 10); do $docker -H "$h" run -d busybox sleep 3600 >/dev/null; done; done
# Quiet running containers (a berth shim gives back what start faulted in after 3 s idle).
sleep 5
b_shims=$(pgrep -f "berth shim $work"); d_shims=$(pgrep -f "containerd-shim-runc-v2 -namespace bench ")
avg() { local t=0 c=0; for p in "$@"; do t=$((t + $($1 "$p"))); c=$((c+1)); done; echo $((t / (c > 0 ? c : 1))); }
b_rss=0; b_pss=0; c=0; for p in $b_shims; do b_rss=$((b_rss+$(rss $p))); b_pss=$((b_pss+$(pss $p))); c=$((c+1)); done; b_rss=$((b_rss/c)); b_pss=$((b_pss/c))
d_rss=0; d_pss=0; c=0; for p in $d_shims; do d_rss=$((d_rss+$(rss $p))); d_pss=$((d_pss+$(pss $p))); c=$((c+1)); done; d_rss=$((d_rss/(c>0?c:1))); d_pss=$((d_pss/(c>0?c:1)))
{
echo
echo "## Memory"
echo
echo "| | berth | dockerd |"
echo "|---|---:|---:|"
echo "| daemon RSS right after a \`run --rm\` and a \`ps\` (dockerd: + containerd) | $((b_busy/1024)) MB | $((d_busy/1024)) MB |"
echo "| daemon RSS, idle: 12 s without a request | $((b_idle/1024)) MB | $((d_idle/1024)) MB |"
echo "| of which anonymous (heap, stacks; the rest is the binary's clean, shared text) | $((b_anon/1024)) MB | $((d_anon/1024)) MB |"
echo "| per-container shim RSS (mean of 10 idle containers) | $((b_rss)) kB | $((d_rss)) kB |"
echo "| per-container shim PSS (shared pages split) | $((b_pss)) kB | $((d_pss)) kB |"
} >>"$out"
for h in "$B" "$D"; do $docker -H "$h" rm -f $($docker -H "$h" ps -aq) >/dev/null; done

for h in "$B" "$D"; do for i in $(seq "$n"); do $docker -H "$h" run -d busybox sleep 3600 >/dev/null; done; done
hyperfine -N --warmup 2 --runs 20 --export-markdown "$work/ps.md" -n "berth ps ($n running)" "$docker -H $B ps" -n "dockerd ps ($n running)" "$docker -H $D ps" >/dev/null
{ echo; echo "## docker ps with $n running containers"; echo; cat "$work/ps.md"; } >>"$out"
for h in "$B" "$D"; do $docker -H "$h" rm -f $($docker -H "$h" ps -aq) >/dev/null; done

conc() {
    local h=$1 start end
    start=$(date +%s.%N)
    for i in $(seq 50); do $docker -H "$h" run -d busybox sleep 3600 >/dev/null & done
    wait
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
tb=$(conc "$B"); td=$(conc "$D")
{ echo; echo "## 50 containers started concurrently (50 parallel \`docker run -d\`)"; echo; echo "| berth | dockerd |"; echo "|---:|---:|"; echo "| ${tb} s | ${td} s |"; } >>"$out"
echo; cat "$out"
