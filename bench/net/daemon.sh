#!/bin/bash
# Networking through whole daemons, berth vs Debian's dockerd, driven by the docker CLI:
#   - TCP throughput host → container through a port published on 127.0.0.1, and
#     container → container on a user network (iperf3 from the host, bind-mounted in);
#   - the time to create and then remove 100 networks.
# Usage (root): bench/net/daemon.sh [seconds]     results → bench/results/net-daemon.md
# dockerd runs with its iptables rules (as users run it): the script removes them after.
set -euo pipefail
secs=${1:-5}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
[ -x "$berth" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v dockerd >/dev/null || apt-get install -y -qq docker.io >/dev/null
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 >/dev/null
work=$(mktemp -d /var/tmp/berth-bench-net.XXXXXX)
B="unix://$work/berth.sock"; D="unix://$work/docker.sock"
cleanup() {
    set +e
    for h in "$B" "$D"; do
        $docker -H "$h" rm -f $($docker -H "$h" ps -aq 2>/dev/null) >/dev/null 2>&1
        $docker -H "$h" network prune -f >/dev/null 2>&1
    done
    [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null
    sleep 2
    ip link del benchnet0 2>/dev/null; ip link del benchdnet0 2>/dev/null
    nft delete table inet benchnet 2>/dev/null
    # dockerd's own rules and chains: every rule naming its bridge, subnet or chains.
    for t in filter nat; do
        iptables -t $t -S 2>/dev/null | grep -E -- '^-A .*(benchdnet0|172\.23\.0\.0/24|-j DOCKER)' | sed 's/^-A/-D/' |
            while read -r rule; do eval iptables -t $t "$rule" 2>/dev/null; done
        for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
            iptables -t $t -F $c 2>/dev/null; iptables -t $t -X $c 2>/dev/null
        done
    done
    [ -n "${fwd_policy:-}" ] && iptables -P FORWARD "$fwd_policy"
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/benchnet /sys/fs/cgroup/*/benchdnet; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
# dockerd sets the FORWARD policy to DROP: put back what was there.
fwd_policy=$(iptables -S FORWARD 2>/dev/null | awk '/^-P FORWARD/ {print $3}')
trap cleanup EXIT
"$berth" daemon --data-root "$work/b" --exec-root "$work/br" -H "$B" --bridge benchnet0 --bip 172.24.0.1/24 \
    --default-address-pool base=10.224.0.0/16,size=24 --nft-table benchnet --cgroup-parent /benchnet >"$work/berth.log" 2>&1 &
bpid=$!
ip link add benchdnet0 type bridge && ip addr add 172.23.0.1/24 dev benchdnet0 && ip link set benchdnet0 up
dockerd --data-root "$work/d" --exec-root "$work/dr" -H "$D" --pidfile "$work/d.pid" --bridge benchdnet0 \
    --default-address-pool base=10.223.0.0/16,size=24 --cgroup-parent /benchdnet \
    --containerd-namespace benchnet --containerd-plugins-namespace benchnetp >"$work/dockerd.log" 2>&1 &
dpid=$!
for h in "$B" "$D"; do for i in $(seq 100); do $docker -H "$h" version >/dev/null 2>&1 && break; sleep 0.2; done; done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
for h in "$B" "$D"; do tar -C "$work/rootfs" -cf - . | $docker -H "$h" import - bb >/dev/null; done
libs=(-v /usr/bin/iperf3:/usr/bin/iperf3:ro -v /usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro -v /usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro -v /lib64:/lib64:ro)
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
declare -A host cc
for name in berth dockerd; do
    h=$B; [ $name = dockerd ] && h=$D
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    $docker -H "$h" run -d --name srv -p 127.0.0.1:$port:5201 "${libs[@]}" bb /usr/bin/iperf3 -s >/dev/null
    sleep 1
    host[$name]=$(iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J | gbps)
    $docker -H "$h" network create benchn >/dev/null
    $docker -H "$h" run -d --name srv2 --network benchn "${libs[@]}" bb /usr/bin/iperf3 -s >/dev/null
    sleep 1
    cc[$name]=$($docker -H "$h" run --rm --network benchn "${libs[@]}" bb /usr/bin/iperf3 -c srv2 -t "$secs" -J | gbps)
    $docker -H "$h" rm -f srv srv2 >/dev/null
    $docker -H "$h" network rm benchn >/dev/null
done
nets() {
    local h=$1 s e
    s=$(date +%s.%N); for i in $(seq 100); do $docker -H "$h" network create "n$i" >/dev/null; done; e=$(date +%s.%N)
    echo -n "$(echo "$e - $s" | bc) "
    s=$(date +%s.%N); for i in $(seq 100); do $docker -H "$h" network rm "n$i" >/dev/null; done; e=$(date +%s.%N)
    echo "$(echo "$e - $s" | bc)"
}
read bc br < <(nets "$B"); read dc dr < <(nets "$D")
out=$top/bench/results/net-daemon.md
{
echo "# Networking through the daemons: berth vs dockerd"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) (iptables rules and docker-proxy, as users run it). Command: \`bench/net/daemon.sh $secs\`."
echo
echo "| | berth | dockerd | berth / dockerd |"
echo "|---|---:|---:|---:|"
echo "| host → container, published on 127.0.0.1 (iperf3, Gbit/s) | ${host[berth]} | ${host[dockerd]} | $(echo "scale=2; ${host[berth]} / ${host[dockerd]}" | bc) |"
echo "| container → container, user network (Gbit/s) | ${cc[berth]} | ${cc[dockerd]} | $(echo "scale=2; ${cc[berth]} / ${cc[dockerd]}" | bc) |"
echo "| create 100 networks (s) | $bc | $dc | $(echo "scale=2; $bc / $dc" | bc) |"
echo "| remove 100 networks (s) | $br | $dr | $(echo "scale=2; $br / $dr" | bc) |"
} >"$out"
cat "$out"
