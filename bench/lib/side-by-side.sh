# Sourced by the side-by-side benchmarks: checks $berth is built (installs dockerd and
# hyperfine when missing), starts a berth daemon and Debian's dockerd on
# their own roots, sockets, bridges and cgroup parents under $work (dockerd with
# --iptables=false: no host firewall changes), imports the same busybox image into
# both, and removes everything on exit. Before sourcing set: top, berth, docker, work.
# After: $B and $D are the two DOCKER_HOSTs; bpid/dpid their pids. A script may define
# extra_cleanup() to be run first on exit, and set berth_extra / dockerd_extra to more
# daemon flags.
B="unix://$work/berth.sock"
D="unix://$work/docker.sock"
side_by_side_cleanup() {
    set +e
    declare -F extra_cleanup >/dev/null && extra_cleanup
    # Bounded: dockerd 20.10 was seen to hang removing 1000 containers.
    for h in "$B" "$D"; do timeout 600 $docker -H "$h" rm -f $($docker -H "$h" ps -aq 2>/dev/null) >/dev/null 2>&1; done
    [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null
    sleep 2
    pkill -f "containerd --config $work" 2>/dev/null
    # What a hung removal left: the containers' processes (by cgroup) and their shims.
    cat /sys/fs/cgroup/pids/benchberth/*/tasks /sys/fs/cgroup/pids/benchdock/*/tasks 2>/dev/null | xargs -r kill -9 2>/dev/null
    pkill -9 -f "containerd-shim-runc-v2 .*$work" 2>/dev/null
    sleep 1
    ip link del benchberth0 2>/dev/null; ip link del benchdock0 2>/dev/null
    nft delete table inet benchberth 2>/dev/null; nft delete table ip benchberth 2>/dev/null
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/benchberth /sys/fs/cgroup/*/benchdock; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap side_by_side_cleanup EXIT

[ -x "$berth" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v dockerd >/dev/null || apt-get install -y -qq docker.io >/dev/null
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

"$berth" daemon --data-root "$work/berth-data" --exec-root "$work/berth-run" -H "$B" --bridge benchberth0 \
    --bip 172.27.0.1/16 --default-address-pool base=10.227.0.0/16,size=24 --nft-table benchberth \
    --cgroup-parent /benchberth ${berth_extra:-} >"$work/berth.log" 2>&1 &
bpid=$!
ip link add benchdock0 type bridge && ip addr add 172.26.0.1/16 dev benchdock0 && ip link set benchdock0 up
dockerd --data-root "$work/docker-data" --exec-root "$work/docker-run" -H "$D" --pidfile "$work/docker.pid" \
    --bridge benchdock0 --iptables=false --ip6tables=false --ip-masq=false --cgroup-parent /benchdock \
    --containerd-namespace bench --containerd-plugins-namespace benchp ${dockerd_extra:-} >"$work/dockerd.log" 2>&1 &
dpid=$!
for h in "$B" "$D"; do
    for i in $(seq 100); do $docker -H "$h" version >/dev/null 2>&1 && break; sleep 0.2; done
done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
for h in "$B" "$D"; do tar -C "$work/rootfs" -cf - . | $docker -H "$h" import -c 'CMD ["sh"]' - busybox:latest >/dev/null; done
