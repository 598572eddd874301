#!/bin/bash
# `GET /_ping` on one kept-alive connection, berth vs Debian's dockerd, side by side:
# wrk with one connection and one thread on a loopback TCP listener of each daemon (wrk
# has no unix sockets), so each figure is the daemon's time per request plus loopback,
# with no process start in it. Latency percentiles and requests per second.
# Usage (root): bench/daemon/ping.sh [seconds]        results → bench/results/ping.md
set -euo pipefail
secs=${1:-10}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
work=$(mktemp -d /var/tmp/berth-bench-ping.XXXXXX)
pb=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pd=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
berth_extra="-H tcp://127.0.0.1:$pb --insecure-plain-tcp"
dockerd_extra="-H tcp://127.0.0.1:$pd"
. "$top/bench/lib/side-by-side.sh"
for i in $(seq 100); do curl -sf "http://127.0.0.1:$pd/_ping" >/dev/null && break; sleep 0.2; done
one() {
    # Warm-up, then the measured run; "p50 p90 p99 req/s".
    wrk -t1 -c1 -d2s "http://127.0.0.1:$1/_ping" >/dev/null
    wrk -t1 -c1 -d"${secs}s" --latency "http://127.0.0.1:$1/_ping" |
        awk '/^ +50%/{p50=$2} /^ +90%/{p90=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} END{print p50, p90, p99, rps}'
}
read -r b50 b90 b99 brps < <(one "$pb")
read -r d50 d90 d99 drps < <(one "$pd")
out=$top/bench/results/ping.md
{
echo "# GET /_ping on a kept-alive connection"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); berth $(git -C "$top" rev-parse --short HEAD) (release), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,)."
echo
echo "Command: \`bench/daemon/ping.sh $secs\` — \`wrk -t1 -c1 -d${secs}s --latency http://127.0.0.1:PORT/_ping\` against a loopback TCP listener of each daemon, after a 2 s warm-up."
echo
echo "| | p50 | p90 | p99 | requests/s |"
echo "|---|---:|---:|---:|---:|"
echo "| berth | $b50 | $b90 | $b99 | $brps |"
echo "| dockerd | $d50 | $d90 | $d99 | $drps |"
} >"$out"
cat "$out"
