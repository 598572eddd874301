#!/bin/bash
# Sequential write and read throughput inside a berth container — to a named volume, a
# bind mount and the overlay rootfs — next to the same dd on the host, in one run.
# Usage (root): bench/volumes/run.sh [MiB] [rounds]      results → bench/results/volumes.md
# Writes use conv=fsync; page cache is dropped before each read.
set -euo pipefail
mib=${1:-1024}
rounds=${2:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
[ -x "$berth" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d /var/tmp/berth-bench-vol.XXXXXX)
sock="unix://$work/run/berth.sock"
cleanup() {
    set +e
    "$berth" -H "$sock" rm -f $("$berth" -H "$sock" ps -aq) >/dev/null 2>&1
    [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
    ip link del benchvol0 2>/dev/null; nft delete table inet benchvol 2>/dev/null
    grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for d in /sys/fs/cgroup/*/benchvol; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
"$berth" daemon --data-root "$work/data" --exec-root "$work/run" -H "$sock" --bridge benchvol0 --bip 172.25.0.1/24 \
    --default-address-pool base=10.225.0.0/16,size=24 --nft-table benchvol --cgroup-parent /benchvol >"$work/daemon.log" 2>&1 &
bpid=$!
for i in $(seq 100); do "$berth" -H "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf - . | "$berth" -H "$sock" import - busybox:latest >/dev/null
mkdir -p "$work/bind" "$work/host"
"$berth" -H "$sock" volume create benchvol >/dev/null
"$berth" -H "$sock" run -d --name io -v benchvol:/vol -v "$work/bind:/bind" busybox sleep 100000 >/dev/null

# MB/s timed from the host around the whole command (Debian's static busybox dd prints
# no rate); the cost of an exec that does nothing is measured and taken off.
now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); echo "$t0 $t1"; }
mbs() { awk -v a="$1" -v b="$2" -v o="$3" -v m="$mib" 'BEGIN { t = b - a - o; if (t <= 0) t = 0.001; printf "%.0f", m / t }'; }
run_in() { "$berth" -H "$sock" exec io sh -c "$1" 2>&1; }
declare -A W R
# The fixed cost of `berth exec` (and of a host `sh -c`), median of 5.
overhead() { for i in 1 2 3 4 5; do read -r a b < <(timed "$@"); awk -v a="$a" -v b="$b" 'BEGIN { print b - a }'; done | sort -n | sed -n 3p; }
exec_cost=$(overhead run_in true)
sh_cost=$(overhead sh -c true)
for target in host vol bind rootfs; do
    ws=(); rs=()
    for r in $(seq "$rounds"); do
        if [ "$target" = host ]; then
            read -r a b < <(timed sh -c "busybox dd if=/dev/zero of=$work/host/f bs=1M count=$mib conv=fsync")
            w=$(mbs "$a" "$b" "$sh_cost")
            sync; echo 3 > /proc/sys/vm/drop_caches
            read -r a b < <(timed sh -c "busybox dd if=$work/host/f of=/dev/null bs=1M")
            rd=$(mbs "$a" "$b" "$sh_cost")
            rm -f "$work/host/f"
        else
            dir=/$target; [ "$target" = rootfs ] && dir=/tmp
            read -r a b < <(timed run_in "dd if=/dev/zero of=$dir/f bs=1M count=$mib conv=fsync")
            w=$(mbs "$a" "$b" "$exec_cost")
            sync; echo 3 > /proc/sys/vm/drop_caches
            read -r a b < <(timed run_in "dd if=$dir/f of=/dev/null bs=1M")
            rd=$(mbs "$a" "$b" "$exec_cost")
            run_in "rm -f $dir/f" >/dev/null
        fi
        ws+=("$w"); rs+=("$rd")
    done
    W[$target]=$(printf '%s\n' "${ws[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
    R[$target]=$(printf '%s\n' "${rs[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
done
out=$top/bench/results/volumes.md
{
echo "# Sequential I/O in a berth container vs on the host"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores, $(df -T "$work" | awk 'NR==2{print $2}') under $work; berth $(git -C "$top" rev-parse --short HEAD)."
echo "Median of $rounds rounds of \`dd bs=1M count=$mib\` (writes with conv=fsync; caches dropped before reads; timed from the host, minus the cost of an empty \`berth exec\` ($exec_cost s) or \`sh -c\` ($sh_cost s); busybox dd on both sides). Command: \`bench/volumes/run.sh $mib $rounds\`."
echo
echo "| where | write MB/s | read MB/s | write vs host | read vs host |"
echo "|---|---:|---:|---:|---:|"
for t in host vol bind rootfs; do
    label=$t; [ $t = vol ] && label="named volume"; [ $t = bind ] && label="bind mount"; [ $t = rootfs ] && label="overlay rootfs"
    echo "| $label | ${W[$t]} | ${R[$t]} | $(echo "scale=2; ${W[$t]} / ${W[host]}" | bc) | $(echo "scale=2; ${R[$t]} / ${R[host]}" | bc) |"
done
} >"$out"
cat "$out"
