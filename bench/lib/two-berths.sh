# Sourced by benchmarks that compare two berth binaries on the same machine: one daemon
# at a time over the same roots, socket, bridge, nft table and cgroup parent under a
# fresh $work (so both see the same disk state), a busybox image imported once, and
# everything removed on exit. Before sourcing set: top, docker, name (the bridge is
# ${name}0, the nft table and cgroup parent $name), net (the second octet of its 172.x
# and 10.2x.0.0/16 ranges) and first (the binary that imports the image); optionally
# berth_extra (more daemon flags) and on_exit (a command run first at exit).
# After: start BIN / stop run one daemon ($bpid), $B is its DOCKER_HOST, $work its
# directory, the daemon's output goes to $work/berth.log.
work=$(mktemp -d "/var/tmp/berth-bench-$name.XXXXXX")
B="unix://$work/berth.sock"
bpid=
stop() { [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null || true; bpid=; }
two_berths_cleanup() {
    set +e
    ${on_exit:-true}
    $docker -H "$B" rm -f $($docker -H "$B" ps -aq 2>/dev/null) >/dev/null 2>&1
    stop
    # The shim zygote outlives a stopped daemon that did not retire it.
    pkill -f "shim-zygote $work/" 2>/dev/null
    ip link del "${name}0" 2>/dev/null; nft delete table inet "$name" 2>/dev/null
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/"$name"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap two_berths_cleanup EXIT
start() {
    "$1" daemon --data-root "$work/data" --exec-root "$work/run" -H "$B" --bridge "${name}0" --bip "172.$net.0.1/16" \
        --default-address-pool "base=10.2$net.0.0/16,size=24" --nft-table "$name" --cgroup-parent "/$name" \
        ${berth_extra:-} >>"$work/berth.log" 2>&1 &
    bpid=$!
    for i in $(seq 100); do $docker -H "$B" version >/dev/null 2>&1 && return; sleep 0.1; done
    echo "daemon $1 did not start" >&2; exit 1
}
start "$first"
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf - . | $docker -H "$B" import -c 'CMD ["sh"]' - busybox:latest >/dev/null
stop
