#!/bin/bash
# Networking on hardened hosts, berth vs Debian's dockerd. Each daemon runs in a network
# namespace of its own, so neither touches the host's firewall:
#   plain    — berth on an unfirewalled host (FORWARD policy ACCEPT);
#   hardened — berth on a host firewalled like Docker/ufw hosts: FORWARD policy DROP in
#              iptables-nft and iptables-legacy, br_netfilter on, Docker 28's chains and
#              a ufw-like chain present (berth adds its accepts in both backends);
#   dockerd  — dockerd 20.10 as users run it (it sets the FORWARD policy to DROP itself).
# Measures:
#   - network create + rm pairs through the Engine API, over one kept-alive connection
#     (bench/net/api_pairs.py), so only the daemons are timed, not a client's start-up;
#   - container→container TCP throughput (iperf3) on a user network, medians of
#     alternating rounds (the machine is shared, so rounds interleave).
# Usage (root): bench/net/hardened.sh [pairs] [seconds] [rounds] → bench/results/net-hardened.md
set -euo pipefail
pairs=${1:-100}
secs=${2:-5}
rounds=${3:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
[ -x "$berth" ] || { echo "build first: cargo build --release -p berth" >&2; exit 1; }
# iperf3 and dockerd (installed without starting its service: scripts/setup.sh --bench).
command -v iperf3 >/dev/null && command -v dockerd >/dev/null || sh "$top/scripts/setup.sh" --bench
work=$(mktemp -d /var/tmp/bhbench.XXXXXX)
tag=$$
NP=bhp$tag NH=bhh$tag ND=bhd$tag
declare -A pid
cleanup() {
    set +e
    for h in b-plain b-hard b-beside d; do
        $docker -H "unix://$work/$h.sock" rm -f $($docker -H "unix://$work/$h.sock" ps -aq 2>/dev/null) >/dev/null 2>&1
    done
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done
    sleep 3
    for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null; done
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for ns in $NP $NH $ND; do ip netns del "$ns" 2>/dev/null; done
    for d in /sys/fs/cgroup/*/bhbench* /sys/fs/cgroup/bhbench*; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
for ns in $NP $NH $ND; do
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables'
done
# The hardened host: as the acceptance tests set it up (berth-testutil's HardenedHost).
ip netns exec "$NH" sh -e -c '
for t in iptables-nft iptables-legacy; do $t -w -P FORWARD DROP; done
for c in DOCKER-USER DOCKER-FORWARD DOCKER-CT DOCKER-BRIDGE DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER; do iptables-nft -w -N $c; done
iptables-nft -w -A FORWARD -j DOCKER-USER
iptables-nft -w -A FORWARD -j DOCKER-FORWARD
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-CT
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-BRIDGE
iptables-nft -w -A DOCKER-FORWARD -i docker0 -j ACCEPT
iptables-nft -w -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
iptables-nft -w -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
iptables-legacy -w -N ufw-before-forward
iptables-legacy -w -A FORWARD -j ufw-before-forward
iptables-legacy -w -A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'

start_berth() { # name netns
    nsenter --net=/run/netns/"$2" "$berth" daemon --data-root "$work/$1" --exec-root "$work/$1-run" -H "unix://$work/$1.sock" \
        --bridge bhb0 --bip 172.24.0.1/24 --default-address-pool base=10.224.0.0/16,size=24 --cgroup-parent "/bhbench-$1" \
        --dns 127.0.0.1 >"$work/$1.log" 2>&1 &
    pid[$1]=$!
}
start_berth b-plain "$NP"
start_berth b-hard "$NH"
nsenter --net=/run/netns/"$ND" dockerd --data-root "$work/d" --exec-root "$work/d-run" -H "unix://$work/d.sock" \
    --pidfile "$work/d.pid" --default-address-pool base=10.223.0.0/16,size=24 --cgroup-parent /bhbench-d \
    --containerd-namespace bhbench --containerd-plugins-namespace bhbenchp >"$work/dockerd.log" 2>&1 &
pid[d]=$!
for h in b-plain b-hard d; do
    for _ in $(seq 150); do $docker -H "unix://$work/$h.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
for h in b-plain b-hard d; do tar -C "$work/rootfs" -cf - . | $docker -H "unix://$work/$h.sock" import - bb >/dev/null; done

# Network create + rm pairs (berth in both set-ups, dockerd).
declare -A pair
for h in b-plain b-hard d; do
    read -r total per median < <(python3 "$top/bench/net/api_pairs.py" "$work/$h.sock" "$pairs" "p$h")
    pair[$h]="$per $median"
done

# Container → container throughput.
libs=(-v /usr/bin/iperf3:/usr/bin/iperf3:ro -v /usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro
      -v /usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro -v /lib64:/lib64:ro)
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
for h in b-plain b-hard d; do
    D="$docker -H unix://$work/$h.sock"
    $D network create ccnet >/dev/null
    $D run -d --name srv --network ccnet "${libs[@]}" bb /usr/bin/iperf3 -s >/dev/null
done
sleep 1
declare -A runs
for r in $(seq "$rounds"); do
    for h in b-plain b-hard d; do
        D="$docker -H unix://$work/$h.sock"
        runs[$h]+="$($D run --rm --network ccnet "${libs[@]}" bb /usr/bin/iperf3 -c srv -t "$secs" -J | gbps) "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Coexistence: a berth daemon beside dockerd in dockerd's namespace (dockerd's DROP
# policy and chains, berth's jump); containers of both talk, also after dockerd
# restarts and re-inserts its own jumps first.
start_berth b-beside "$ND"
pid_b=${pid[b-beside]}
for _ in $(seq 150); do $docker -H "unix://$work/b-beside.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
tar -C "$work/rootfs" -cf - . | $docker -H "unix://$work/b-beside.sock" import - bb >/dev/null
talk() { # socket → ok|FAIL: a container reaches another by name on a user network
    local D="$docker -H unix://$work/$1.sock"
    $D network create talknet >/dev/null 2>&1 || true
    $D rm -f talksrv >/dev/null 2>&1
    $D run -d --name talksrv --network talknet bb sh -c 'mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w' >/dev/null
    sleep 0.5
    if $D run --rm --network talknet bb sh -c 'timeout 3 wget -qO- http://talksrv/index.html; exit $?' 2>/dev/null | grep -q hi; then echo ok; else echo FAIL; fi
    $D rm -f talksrv >/dev/null 2>&1
}
beside_before="berth $(talk b-beside), dockerd $(talk d)"
kill "${pid[d]}"; wait "${pid[d]}" 2>/dev/null || true
nsenter --net=/run/netns/"$ND" dockerd --data-root "$work/d" --exec-root "$work/d-run" -H "unix://$work/d.sock" \
    --pidfile "$work/d.pid" --default-address-pool base=10.223.0.0/16,size=24 --cgroup-parent /bhbench-d \
    --containerd-namespace bhbench --containerd-plugins-namespace bhbenchp >>"$work/dockerd.log" 2>&1 &
pid[d]=$!
for _ in $(seq 150); do $docker -H "unix://$work/d.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
beside_after="berth $(talk b-beside), dockerd $(talk d)"
forward_beside=$(ip netns exec "$ND" iptables-nft -S FORWARD | grep -- '^-A' | head -4 | tr '\n' ';')
declare -A med
for h in b-plain b-hard d; do med[$h]=$(echo "${runs[$h]}" | median); done
rules=$(ip netns exec "$NH" iptables-nft -S FORWARD | head -3 | tr '\n' ';')

out=$top/bench/results/net-hardened.md
{
echo "# Networking on hardened hosts: berth vs dockerd"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores (shared with other builds); berth $(git -C "$top" rev-parse --short HEAD) (release), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), $(iperf3 --version | head -1 | awk '{print $1, $2}'). Command: \`bench/net/hardened.sh $pairs $secs $rounds\`."
echo
echo "Each daemon runs in a network namespace of its own. *hardened*: FORWARD policy DROP in iptables-nft and iptables-legacy, br_netfilter on, Docker 28's and a ufw-like chain present (FORWARD there starts: \`$rules\`). *plain*: FORWARD policy ACCEPT, nothing else. dockerd sets DROP itself."
echo
echo "## network create + rm, through the Engine API ($pairs pairs, one kept-alive connection)"
echo
echo "| | ms per pair (mean) | median |"
echo "|---|---:|---:|"
for h in b-plain b-hard d; do
    set -- ${pair[$h]}
    name=$h; [ "$h" = b-plain ] && name="berth, plain host"; [ "$h" = b-hard ] && name="berth, hardened host"; [ "$h" = d ] && name="dockerd"
    echo "| $name | $1 | $2 |"
done
set -- ${pair[b-plain]}; bp=$1; set -- ${pair[b-hard]}; bh=$1; set -- ${pair[d]}; dd=$1
echo
echo "dockerd / berth: $(echo "scale=1; $dd / $bp" | bc)x (plain), $(echo "scale=1; $dd / $bh" | bc)x (hardened)."
echo
echo "## container → container TCP, user network (iperf3 ${secs} s, median of $rounds alternating rounds)"
echo
echo "| | Gbit/s | rounds |"
echo "|---|---:|---|"
echo "| berth, plain host | ${med[b-plain]} | ${runs[b-plain]}|"
echo "| berth, hardened host (FORWARD DROP, br_netfilter, other chains) | ${med[b-hard]} | ${runs[b-hard]}|"
echo "| dockerd (its own DROP policy and rules) | ${med[d]} | ${runs[d]}|"
echo
echo "berth hardened / plain: $(echo "scale=3; ${med[b-hard]} / ${med[b-plain]}" | bc)."
echo
echo "## berth beside dockerd (one namespace, dockerd's DROP policy and chains)"
echo
echo "- containers talk by name on a user network: $beside_before"
echo "- after dockerd restarted (re-inserting its jumps): $beside_after"
echo "- FORWARD then starts: \`$forward_beside\`"
} >"$out"
cat "$out"
