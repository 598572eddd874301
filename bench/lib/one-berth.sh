# Sourced by benchmarks of berth alone: starts one berth daemon (release build) on its
# own roots, socket, bridge, nft table and cgroup parent under a fresh $work, imports a
# busybox image, and removes everything on exit. Before sourcing set: top, docker, and
# name (the bridge is ${name}0, the nft table and cgroup parent $name) and net (the
# second octet of its 172.x and 10.2x.0.0/16 ranges); optionally berth_extra (more
# daemon flags). After: $B is its DOCKER_HOST, $bpid its pid, $work its directory.
berth=$top/target/release/berth
[ -x "$berth" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d "/var/tmp/berth-bench-$name.XXXXXX")
# Searchable by others: a remapped container's root reaches its files through it.
chmod 711 "$work"
B="unix://$work/berth.sock"
one_berth_cleanup() {
    set +e
    $docker -H "$B" rm -f $($docker -H "$B" ps -aq 2>/dev/null) >/dev/null 2>&1
    [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null
    sleep 1
    ip link del "${name}0" 2>/dev/null
    nft delete table inet "$name" 2>/dev/null
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/"$name"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap one_berth_cleanup EXIT
"$berth" daemon --data-root "$work/data" --exec-root "$work/run" -H "$B" --bridge "${name}0" \
    --bip "172.$net.0.1/16" --default-address-pool "base=10.2$net.0.0/16,size=24" --nft-table "$name" \
    --cgroup-parent "/$name" ${berth_extra:-} >"$work/berth.log" 2>&1 &
bpid=$!
for i in $(seq 100); do $docker -H "$B" version >/dev/null 2>&1 && break; sleep 0.1; done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf - . | $docker -H "$B" import -c 'CMD ["sh"]' - busybox:latest >/dev/null
