#!/bin/sh
# Pod start and teardown through crictl, berth's CRI side by side with containerd 1.6's
# CRI plugin on the same machine: RunPodSandbox + CreateContainer + StartContainer of a
# busybox pod, then StopPodSandbox + RemovePodSandbox, N times each, alternating.
# berth runs twice: with its own bridge network and with the same CNI plugins containerd
# uses (bridge + host-local + portmap from containernetworking-plugins). Then the memory
# a running pod costs (its sandbox's pause process and the shims, PSS, summed over K pods)
# and each daemon's own.
#
#   bench/cri/run.sh [N] [K]      (root; N=30 pods per runtime, K=10 for memory)
#
# Needs: target/release/berth and target/release/examples/podbench (cargo build --release
# -p berth; cargo build --release -p berth-cri --example podbench), crictl
# (../shared/tools/cri-tools), containerd and runc (scripts/setup.sh --bench), the CNI
# plugins, gcc (a static pause for containerd's sandbox image). Writes
# bench/results/cri.md. Nothing is pulled from outside: images come from berth's own
# registry on 127.0.0.1.
set -eu
N=${1:-30}
K=${2:-10}
top=$(cd "$(dirname "$0")/../.." && pwd)
BERTH=${BERTH:-$top/target/release/berth}
CRICTL=${CRICTL:-$top/../shared/tools/cri-tools/bin/crictl}
PODBENCH=${PODBENCH:-$top/target/release/examples/podbench}
CTD=${CONTAINERD:-$(command -v containerd || true)}
CNIBIN=${CNI_BIN:-/usr/lib/cni}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for x in "$BERTH" "$CRICTL" "$PODBENCH" "$CTD" "$CNIBIN/bridge"; do [ -x "$x" ] || { echo "missing $x" >&2; exit 1; }; done
W=$(mktemp -d /tmp/bench-cri.XXXXXX)
T=bc$$
T=$(echo "$T" | cut -c1-8)

cleanup() {
    set +e
    for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    sleep 1
    for h in /sys/fs/cgroup/pids /sys/fs/cgroup/memory /sys/fs/cgroup; do
        for d in "$h/${T}b" "$h/${T}c" "$h/$T-ctd"; do
            [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
        done
    done
    # containerd's shims outlive it: they name the work dir on their command line.
    for pid in $(grep -l "$W" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do kill -9 "$pid" 2>/dev/null; done
    sleep 1
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for l in "${T}b" "${T}c" "${T}cni1" "${T}cni2"; do ip link del "$l" 2>/dev/null; done
    nft delete table ip "${T}b" 2>/dev/null; nft delete table ip "${T}c" 2>/dev/null
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        for d in "${T}b" "${T}c" "$T-ctd"; do [ -d "$h$d" ] && find "$h$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    done
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

wait_sock() { # socket log
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1)); [ $i -gt 300 ] && { echo "no socket $1" >&2; tail -20 "$2" >&2; exit 1; }
        sleep 0.1
    done
}

echo "bench/cri: images"
"$BERTH" registry serve --addr 127.0.0.1:0 --root "$W/registry" > "$W/registry.log" 2>&1 &
echo $! > "$W/registry.pid"
i=0; until grep -q "listening on" "$W/registry.log" 2>/dev/null; do i=$((i + 1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
REG=$(sed -n 's#.*listening on http://##p' "$W/registry.log" | head -1)

# start_berth ROLE NET [flags]: a berth daemon with its own roots, bridge, table, cgroup.
start_berth() {
    role=$1 n=$2; shift 2
    d=$W/$role
    mkdir -p "$d"; echo '{}' > "$d/daemon.json"
    "$BERTH" daemon --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/run" \
        -H "unix://$d/run/berth.sock" --bridge "$T$role" --bip "172.26.$n.1/24" \
        --default-address-pool "base=10.$((n - 200)).0.0/16,size=24" --nft-table "$T$role" \
        --cgroup-parent "/$T$role" --cri-socket "unix://$d/run/cri.sock" "$@" > "$d/daemon.log" 2>&1 &
    echo $! > "$W/$role.pid"
    wait_sock "$d/run/cri.sock" "$d/daemon.log"
}

start_berth b 241
export DOCKER_HOST="unix://$W/b/run/berth.sock" DOCKER_CONFIG="$W/docker"
sh "$top/scripts/mkrootfs-busybox.sh" "$W/bb" >/dev/null
tar -C "$W/bb" -cf - . | docker import -c 'CMD ["sh"]' - "$REG/bench/busybox:1" >/dev/null
docker push -q "$REG/bench/busybox:1" >/dev/null
mkdir -p "$W/pause"
gcc -static -O2 -s -o "$W/pause/pause" "$top/../shared/tools/cri-tools/test-images/src/pause.c"
tar -C "$W/pause" -cf - pause | docker import -c 'ENTRYPOINT ["/pause"]' - "$REG/pause:3.9" >/dev/null
docker push -q "$REG/pause:3.9" >/dev/null
docker rmi "$REG/bench/busybox:1" "$REG/pause:3.9" >/dev/null

# The CNI networks (one per runtime, same plugins).
cni_conf() { # dir bridge subnet ipamdir
    mkdir -p "$1"
    cat > "$1/10-bench.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3"}]], "dataDir": "$4"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
}
cni_conf "$W/cni-berth" "${T}cni1" 10.243.0.0/16 "$W/ipam-berth"
cni_conf "$W/cni-ctd" "${T}cni2" 10.244.0.0/16 "$W/ipam-ctd"
start_berth c 242 --cni-conf-dir "$W/cni-berth" --cni-bin-dir "$CNIBIN"

echo "bench/cri: containerd $("$CTD" --version | awk '{print $3}')"
mkdir -p "$W/ctd"
cat > "$W/ctd/config.toml" <<EOF
version = 2
root = "$W/ctd/root"
state = "$W/ctd/state"
[grpc]
  address = "$W/ctd/containerd.sock"
[ttrpc]
  address = "$W/ctd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/ctd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REG/pause:3.9"
  # Sandboxes ask for oom_score_adj -998, which needs CAP_SYS_RESOURCE (not in every
  # machine's bounding set): keep containerd's own instead, as under rootless setups.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNIBIN"
    conf_dir = "$W/cni-ctd"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REG"]
    endpoint = ["http://$REG"]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
EOF
"$CTD" --config "$W/ctd/config.toml" > "$W/ctd/log" 2>&1 &
echo $! > "$W/ctd.pid"
wait_sock "$W/ctd/containerd.sock" "$W/ctd/log"

: > "$W/crictl.yaml"
crictl_of() { # socket args...
    sock_=$1; shift
    "$CRICTL" --config "$W/crictl.yaml" --runtime-endpoint "unix://$sock_" --image-endpoint "unix://$sock_" --timeout 60s "$@"
}
SOCK_berth_bridge=$W/b/run/cri.sock
SOCK_berth_cni=$W/c/run/cri.sock
SOCK_containerd=$W/ctd/containerd.sock

# The pod and its container, as a kubelet would send them (cgroup parent per runtime).
mkpod() { # name cgroup_parent
    echo "{\"metadata\":{\"name\":\"$1\",\"namespace\":\"bench\",\"uid\":\"$1-uid\",\"attempt\":0},\"log_directory\":\"$W/logs/$1\",\"linux\":{\"cgroup_parent\":\"$2\"}}" > "$W/$1.pod.json"
}
echo "{\"metadata\":{\"name\":\"app\"},\"image\":{\"image\":\"$REG/bench/busybox:1\"},\"command\":[\"sleep\",\"3600\"],\"log_path\":\"app.log\"}" > "$W/ctr.json"

now() { date +%s%N; }
fail() { # runtime: what crictl and the runtime said
    echo "bench/cri: $1 failed:" >&2; tail -5 "$W/crictl.err" >&2
    case $1 in containerd) tail -20 "$W/ctd/log" >&2;; berth_bridge) tail -20 "$W/b/daemon.log" >&2;; *) tail -20 "$W/c/daemon.log" >&2;; esac
    exit 1
}
# one RUNTIME NAME PARENT: start (runp+create+start) and teardown (stopp+rmp) in ms.
one() {
    s=$(eval echo "\$SOCK_$1")
    mkpod "$2" "$3"
    t0=$(now)
    p=$(crictl_of "$s" runp "$W/$2.pod.json" 2>>"$W/crictl.err") || fail "$1"
    c=$(crictl_of "$s" create "$p" "$W/ctr.json" "$W/$2.pod.json" 2>>"$W/crictl.err") || fail "$1"
    crictl_of "$s" start "$c" >/dev/null 2>&1
    t1=$(now)
    crictl_of "$s" stopp "$p" >/dev/null 2>&1
    crictl_of "$s" rmp "$p" >/dev/null 2>&1
    t2=$(now)
    echo "$1 $(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 ))" >> "$W/times"
}

RUNTIMES="berth_bridge berth_cni containerd"
parent() { case $1 in containerd) echo "/$T-ctd";; berth_bridge) echo "/${T}b";; *) echo "/${T}c";; esac; }
for r in $RUNTIMES; do
    s=$(eval echo "\$SOCK_$r")
    crictl_of "$s" pull "$REG/bench/busybox:1" >/dev/null
    one "$r" "warm-$r" "$(parent "$r")"; one "$r" "warm2-$r" "$(parent "$r")"
done
: > "$W/times"
echo "bench/cri: $N pods per runtime"
i=0
while [ $i -lt "$N" ]; do
    for r in $RUNTIMES; do one "$r" "p$i-$(echo "$r" | tr _ -)" "$(parent "$r")"; done
    i=$((i + 1))
done

# The same at the gRPC client (one connection, no crictl process per call).
echo "bench/cri: $N pods per runtime through podbench"
i=0
while [ $i -lt "$N" ]; do
    for r in $RUNTIMES; do
        s=$(eval echo "\$SOCK_$r")
        "$PODBENCH" "$s" "$REG/bench/busybox:1" 1 "$(parent "$r")" "g$i-$(echo "$r" | tr _ -)-" "$W/logs" >> "$W/grpc.$r" 2>>"$W/crictl.err" || fail "$r"
    done
    i=$((i + 1))
done

# Per-pod memory: K running pods, the PSS of their pause processes and shims.
pss() { awk '/^Pss:/ {s += $2} END {print s + 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
memory() { # runtime -> "pss_kb_per_pod rss_kb_per_pod daemon_rss_kb"
    r=$1 s=$(eval echo "\$SOCK_$1")
    j=0; ids=""
    while [ $j -lt "$K" ]; do
        mkpod "m$j-$(echo "$r" | tr _ -)" "$(parent "$r")"
        p=$(crictl_of "$s" runp "$W/m$j-$(echo "$r" | tr _ -).pod.json" 2>>"$W/crictl.err") || fail "$1"
        c=$(crictl_of "$s" create "$p" "$W/ctr.json" "$W/m$j-$(echo "$r" | tr _ -).pod.json" 2>>"$W/crictl.err") || fail "$1"
        crictl_of "$s" start "$c" >/dev/null 2>&1
        ids="$ids $p"
        j=$((j + 1))
    done
    sleep 8   # shims give back what start faulted in after 3 s idle
    # berth: the shims and the pause processes (a pause is a clone of its shim and keeps
    # its command line); containerd: its shims and the pause processes of its pods.
    pat="berth shim $W/$( [ "$r" = berth_bridge ] && echo b || echo c)/"
    tp=0; tr=0
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
        hit=0
        case $r in
            containerd)
                case "$cmd" in *"-address $W/ctd/containerd.sock"*) hit=1;; esac
                [ "$cmd" = "/pause " ] && grep -q "$W/ctd" "/proc/$pid/mountinfo" 2>/dev/null && hit=1;;
            *) case "$cmd" in *"$pat"*) hit=1;; esac;;
        esac
        if [ $hit = 1 ]; then tp=$((tp + $(pss "$pid"))); tr=$((tr + $(rss "$pid"))); fi
    done
    dpid=$(cat "$W/$(case $r in containerd) echo ctd;; berth_bridge) echo b;; *) echo c;; esac).pid")
    # berth's shim zygote: one per daemon, whatever the number of pods.
    zp=0
    case $r in berth_*) for pid in $(pgrep -f "berth shim-zygote $W/$( [ "$r" = berth_bridge ] && echo b || echo c)/"); do zp=$((zp + $(pss "$pid"))); done;; esac
    echo "$((tp / K)) $((tr / K)) $(rss "$dpid") $zp"
    for p in $ids; do crictl_of "$s" stopp "$p" >/dev/null 2>&1; crictl_of "$s" rmp "$p" >/dev/null 2>&1; done
}
echo "bench/cri: memory of $K running pods"
MEM_berth_bridge=$(memory berth_bridge)
MEM_berth_cni=$(memory berth_cni)
MEM_containerd=$(memory containerd)

out=$top/bench/results/cri.md
{
    echo "# Pod start and teardown through crictl: berth vs containerd 1.6"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r); N=$N pods per runtime (alternating), after 2 warm-ups;"
    echo "K=$K running pods for memory. containerd $("$CTD" --version | awk '{print $3}') with runc $(runc --version | awk 'NR==1{print $3}') and its CRI plugin;"
    echo "berth $(git -C "$top" rev-parse --short HEAD) (release build). Each figure includes crictl's own start-up (3 runs for start, 2 for teardown)."
    echo
    echo "| runtime | start p50 (ms) | start p90 | start mean | teardown p50 | teardown p90 | teardown mean |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for r in $RUNTIMES; do
        for col in 2 3; do
            awk -v r="$r" -v c="$col" '$1 == r {print $c / 1000}' "$W/times" | sort -n > "$W/col$col"
        done
        stat() { awk 'BEGIN{n=0} {v[n++]=$1; s+=$1} END {printf "%.1f %.1f %.1f", v[int(n*0.5)], v[int(n*0.9)], s/n}' "$1"; }
        set -- $(stat "$W/col2") $(stat "$W/col3")
        echo "| $r | $1 | $2 | $3 | $4 | $5 | $6 |"
    done
    echo
    echo "The same pods timed at the gRPC client (\`podbench\`: one connection, no process start per call), in ms:"
    echo
    echo "| runtime | start p50 | start p90 | start mean | teardown p50 | teardown p90 | teardown mean |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for r in $RUNTIMES; do
        awk '{print ($1 + $2 + $3) / 1000}' "$W/grpc.$r" | sort -n > "$W/g2"
        awk '{print ($4 + $5) / 1000}' "$W/grpc.$r" | sort -n > "$W/g3"
        set -- $(stat "$W/g2") $(stat "$W/g3")
        echo "| $r | $1 | $2 | $3 | $4 | $5 | $6 |"
    done
    echo
    echo "Memory per running pod (the sandbox's pause process and the shims; the app process not counted),"
    echo "each daemon's RSS with $K pods running, and berth's shim zygote (one per daemon; shims are forked from it):"
    echo
    echo "| runtime | PSS per pod (KiB) | RSS per pod (KiB) | daemon RSS (KiB) | zygote PSS (KiB) |"
    echo "|---|---:|---:|---:|---:|"
    for r in $RUNTIMES; do
        set -- $(eval echo "\$MEM_$r")
        echo "| $r | $1 | $2 | $3 | $( [ "$4" = 0 ] && echo - || echo "$4") |"
    done
} > "$out"
cat "$out"
