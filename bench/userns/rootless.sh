#!/bin/bash
# Rootless `run --rm busybox true`: berth's rootless daemon (through the docker CLI) vs
# rootless Podman, side by side, as the same ordinary user, alternating run by run (so
# drift on a shared machine hits both alike). Both use native overlay, slirp4netns for
# the container's network and no cgroup (this host has no delegated cgroup v2 subtree:
# berth rootless runs without one, rootless podman on cgroup v1 makes none). Podman uses
# runc (see below). Both import the same busybox rootfs tar.
#
#   bench/userns/rootless.sh [RUNS] [BERTH]   (root, which makes the user; BERTH defaults
#                                               to target/release/berth, else target/debug)
# Results: bench/results/rootless.md, with the command that made them.
set -euo pipefail
runs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${2:-$top/target/release/berth}
[ -x "$berth" ] || berth=$top/target/debug/berth
docker=${DOCKER:-/usr/local/bin/docker}
[ "$(id -u)" = 0 ] || { echo "run as root (it makes the bench user)" >&2; exit 1; }
for t in setpriv newuidmap slirp4netns podman; do
    command -v $t >/dev/null || { echo "$t not found: apt-get install -y uidmap slirp4netns podman" >&2; exit 1; }
done

user=berthbenchrl
start=4400000
id -u $user >/dev/null 2>&1 || useradd -M -s /bin/sh $user
for f in /etc/subuid /etc/subgid; do grep -q "^$user:" $f 2>/dev/null || echo "$user:$start:65536" >>$f; done
work=$(mktemp -d /tmp/bench-rootless.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/bin" "$work/home" "$work/run" "$work/podman"
cp "$berth" "$work/bin/berth"
chown $user: "$work/home" "$work/run" "$work/podman"
chmod 700 "$work/run"
as_user() {
    setpriv --reuid $user --regid $user --init-groups -- env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        HOME="$work/home" XDG_RUNTIME_DIR="$work/run" "$@"
}
B="unix://$work/run/berth.sock"
podman_cmd=(podman --root "$work/podman/storage" --runroot "$work/run/podman" --storage-driver overlay --cgroup-manager cgroupfs --events-backend file)
dpid=""
cleanup() {
    set +e
    for c in $(as_user "$docker" -H "$B" ps -aq 2>/dev/null); do as_user "$docker" -H "$B" rm -f "$c" >/dev/null 2>&1; done
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
    as_user "${podman_cmd[@]}" rm -af >/dev/null 2>&1
    [ -n "${BENCH_DEBUG:-}" ] && ps -o pid,ppid,cmd -u "$(id -u $user)"
    # What is left of the user's (podman's pause process, conmon): root removes it, and
    # the files owned by subordinate ids.
    for p in $(ps -eo pid=,uid= | awk -v u="$(id -u $user)" '$2==u {print $1}'); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

as_user "$work/bin/berth" daemon >"$work/berth.log" 2>&1 &
dpid=$!
for i in $(seq 100); do as_user "$docker" -H "$B" version >/dev/null 2>&1 && break; sleep 0.2; done
sh "$top/scripts/mkrootfs-busybox.sh" "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
chmod 644 "$work/busybox.tar"
as_user "$docker" -H "$B" import -c 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null
as_user "${podman_cmd[@]}" import -c 'CMD ["sh"]' "$work/busybox.tar" localhost/busybox:latest >/dev/null

berth_run=("$docker" -H "$B" run --rm busybox true)
# runc, not Debian's crun 1.8.1, which refuses to start on this hybrid cgroup layout
# ("cgroups in hybrid mode not supported") even with --cgroups=disabled.
podman_run=("${podman_cmd[@]}" run --rm --runtime runc --network slirp4netns localhost/busybox:latest true)
# Warm-up (page cache, first-run setup) for both.
for i in 1 2 3; do as_user "${berth_run[@]}" >/dev/null; as_user "${podman_run[@]}" >/dev/null; done

ms() { local t0 t1; t0=$(date +%s%N); as_user "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
: >"$work/berth.us"; : >"$work/podman.us"
for i in $(seq "$runs"); do
    ms "${berth_run[@]}" >>"$work/berth.us"
    ms "${podman_run[@]}" >>"$work/podman.us"
done

stats() { sort -n "$1" | awk '{a[NR]=$1; s+=$1} END {printf "%.1f %.1f %.1f %.1f\n", s/NR/1000, a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000}'; }
read -r bmean bmed bmin bmax < <(stats "$work/berth.us")
read -r pmean pmed pmin pmax < <(stats "$work/podman.us")
out=$top/bench/results/rootless.md
{
echo "# Rootless \`run --rm busybox true\`: berth vs Podman"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); berth ${BERTH_REV:-$(git -C "$top" rev-parse --short HEAD)} ($(basename "$(dirname "$berth")") build) through the docker CLI $("$docker" version -f '{{.Client.Version}}' 2>/dev/null); $(podman --version) with $(runc --version | head -1)."
echo "Both as the ordinary user \`$user\` (subordinate uids $(grep "^$user:" /etc/subuid | head -1 | cut -d: -f2-)), native overlay, slirp4netns, no cgroup (podman: cgroupfs manager, which on this cgroup v1 host makes none for a rootless container); $runs runs each, alternating, after 3 warm-up runs each."
echo "Command: \`bench/userns/rootless.sh $runs${2:+ $2}\`"
echo
echo "| | mean ms | median ms | min ms | max ms |"
echo "|---|---:|---:|---:|---:|"
echo "| berth (\`docker run --rm busybox true\`) | $bmean | $bmed | $bmin | $bmax |"
echo "| podman (\`podman run --rm --runtime runc --network slirp4netns busybox true\`) | $pmean | $pmed | $pmin | $pmax |"
echo
awk -v b="$bmean" -v p="$pmean" -v bm="$bmed" -v pm="$pmed" 'BEGIN {printf "berth is %.1fx faster by the mean, %.1fx by the median.\n", p/b, pm/bm}'
} >"$out"
cat "$out"
