#!/bin/sh
# Runs critest (the Kubernetes CRI validation suite, cri-tools v1.36) against berth's CRI,
# offline: the images critest asks for are rebuilt locally (cri-tools' test-images, on a
# busybox from busybox-static), pushed to berth's own registry on 127.0.0.1, and the CRI
# daemon pulls registry.k8s.io/, gcr.io/ and k8s.gcr.io/ names through registry mirrors
# pointing there, keeping the names critest asked for.
#
#   scripts/critest.sh [extra critest flags]      e.g. -ginkgo.focus 'PodSandbox'
#
# Environment: CRI_TOOLS (default ../shared/tools/cri-tools), BERTH (default
# target/debug/berth), OUT (results dir, default target/critest), CRITEST_TIMEOUT
# (default 45m), CRITEST_PARALLEL (ginkgo nodes, default 1), CRITEST_CACHE (downloads kept
# between runs, default target/critest-cache), KEEP=1 keeps the work dir.
# Writes $OUT/critest.json, $OUT/junit.xml, $OUT/summary.txt and $OUT/daemon.log; exits
# 0 when every spec that ran passed (skips excepted), 1 otherwise, 2 on a setup failure.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${CRI_TOOLS:-$ROOT/../shared/tools/cri-tools}
BERTH=${BERTH:-$ROOT/target/debug/berth}
OUT=${OUT:-$ROOT/target/critest}
CACHE=${CRITEST_CACHE:-$ROOT/target/critest-cache}
TIMEOUT=${CRITEST_TIMEOUT:-45m}
PARALLEL=${CRITEST_PARALLEL:-1}
DOCKER=${DOCKER:-$(command -v docker || echo /usr/local/bin/docker)}
[ -x "$TOOLS/bin/critest" ] || { echo "critest.sh: no critest in $TOOLS/bin (set CRI_TOOLS)" >&2; exit 2; }
[ -x "$BERTH" ] || { echo "critest.sh: no berth binary at $BERTH (cargo build -p berth)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "critest.sh: needs root" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d /tmp/berth-critest.XXXXXX)
# Pods in user namespaces reach the daemon's roots as nobody: the way there must be open.
chmod 711 "$W"
# Names no other daemon on the machine uses (tests use btdN, the default is berth0).
TAG=bcr$$
TAG=$(echo "$TAG" | cut -c1-10)

# pid of a daemon; every container of it lives under its cgroup parent.
cleanup() {
    set +e
    for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    sleep 1
    for role in b c; do
        for h in /sys/fs/cgroup/pids /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup; do
            d=$h/$TAG$role
            [ -d "$d" ] || continue
            find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
        done
    done
    # Shims and the shim zygote name the work dir on their command lines.
    for pid in $(grep -l "$W" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do kill -9 "$pid" 2>/dev/null; done
    sleep 1
    grep " $W" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for role in b c; do
        ip link del "${TAG}$role" 2>/dev/null
        nft delete table ip "${TAG}$role" 2>/dev/null
        for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
            [ -d "$h$TAG$role" ] && find "$h$TAG$role" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
    done
    [ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT INT TERM

wait_for() { # file seconds
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1)); [ $i -gt $(($2 * 10)) ] && return 1
        sleep 0.1
    done
}

# start_daemon ROLE N [flags...]: a daemon with its own roots, bridge, subnet, table, cgroup.
start_daemon() {
    role=$1 n=$2; shift 2
    d=$W/$role
    mkdir -p "$d"
    echo '{}' > "$d/daemon.json"
    "$BERTH" daemon --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/run" \
        -H "unix://$d/run/berth.sock" --bridge "$TAG$role" --bip "172.27.$n.1/24" \
        --default-address-pool "base=10.$((n - 30)).0.0/16,size=24" --nft-table "$TAG$role" \
        --cgroup-parent "/$TAG$role" "$@" > "$d/daemon.log" 2>&1 &
    echo $! > "$W/$role.pid"
    wait_for "$d/run/berth.sock" 30 || { cat "$d/daemon.log" >&2; echo "critest.sh: $role daemon did not start" >&2; exit 2; }
}

echo "critest.sh: registry"
"$BERTH" registry serve --addr 127.0.0.1:0 --root "$W/registry" > "$W/registry.log" 2>&1 &
echo $! > "$W/registry.pid"
i=0; until grep -q "listening on" "$W/registry.log" 2>/dev/null; do i=$((i + 1)); [ $i -gt 100 ] && { echo "critest.sh: registry did not start" >&2; exit 2; }; sleep 0.1; done
REG=$(sed -n 's#.*listening on http://##p' "$W/registry.log" | head -1)

echo "critest.sh: building the test images into $REG"
start_daemon b 251
if ! DOCKER_HOST="unix://$W/b/run/berth.sock" DOCKER_CONFIG="$W/docker" REGISTRY="$REG" DOCKER="$DOCKER" \
    bash "$TOOLS/test-images/build-and-push.sh" > "$W/build.log" 2>&1; then
    cat "$W/build.log" >&2; echo "critest.sh: building the test images failed" >&2; exit 2
fi

# critest's default image is upstream's busybox, whose sh executes applets; the stand-in's
# busybox-static runs them in-process, so a masked /bin/ls is never executed (the
# MaskedPaths spec). Debian's dynamically linked busybox executes them as upstream's does:
# when apt can fetch it, the default image is rebuilt on it (with its two libraries).
exec_busybox_image() {
    deb=$(ls "$CACHE"/busybox_*.deb 2>/dev/null | head -1)
    if [ -z "$deb" ]; then
        mkdir -p "$CACHE"
        (cd "$CACHE" && apt-get download -q busybox) > "$W/apt.log" 2>&1 || return 1
        deb=$(ls "$CACHE"/busybox_*.deb 2>/dev/null | head -1)
        [ -n "$deb" ] || return 1
    fi
    x=$W/bbdeb; R=$W/bbroot
    dpkg-deb -x "$deb" "$x" || return 1
    mkdir -p "$R"/bin "$R"/etc "$R"/tmp "$R"/root "$R"/proc "$R"/sys "$R"/dev "$R"/var/run "$R"/usr/sbin "$R"/usr/local/bin "$R"/lib64 "$R"/lib/x86_64-linux-gnu
    cp "$x/bin/busybox" "$R/bin/busybox"
    for lib in $(ldd "$R/bin/busybox" | awk '$3 ~ /^\// {print $3}'); do cp "$lib" "$R/lib/x86_64-linux-gnu/"; done
    cp /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
    for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -f "$R/bin/busybox" "$R/bin/$a"; done
    for h in pgrep ipcs; do gcc -static -O2 -s -o "$R/bin/$h" "$TOOLS/test-images/src/$h.c" || return 1; done
    cp "$TOOLS/test-images/busybox/passwd" "$TOOLS/test-images/busybox/group" "$R/etc/"
    : > "$R/etc/hosts"; : > "$R/etc/resolv.conf"; chmod 1777 "$R/tmp"
    img=$REG/e2e-test-images/busybox:1.29-2
    tar -C "$R" -c . | DOCKER_HOST="unix://$W/b/run/berth.sock" DOCKER_CONFIG="$W/docker" "$DOCKER" import -c 'CMD ["sh"]' - "$img" > /dev/null &&
        DOCKER_HOST="unix://$W/b/run/berth.sock" DOCKER_CONFIG="$W/docker" "$DOCKER" push "$img" > /dev/null
}
if exec_busybox_image; then
    echo "critest.sh: default test image on Debian's busybox (applets executed)"
    echo "busybox: exec" > "$OUT/images.txt"
else
    echo "critest.sh: Debian's busybox not available: the default test image keeps busybox-static (MaskedPaths will fail)"
    echo "busybox: static" > "$OUT/images.txt"
fi
kill "$(cat "$W/b.pid")"; rm -f "$W/b.pid"

echo "critest.sh: CRI daemon"
start_daemon c 252 --cri-socket "unix://$W/c/run/cri.sock" \
    --registry-mirror "registry.k8s.io=http://$REG" --registry-mirror "gcr.io=http://$REG" \
    --registry-mirror "k8s.gcr.io=http://$REG"
wait_for "$W/c/run/cri.sock" 10 || { echo "critest.sh: no CRI socket" >&2; exit 2; }

echo "critest.sh: critest (timeout $TIMEOUT)"
EP="unix://$W/c/run/cri.sock"
PAR=""
[ "$PARALLEL" -gt 1 ] && PAR="-parallel $PARALLEL"
set +e
(cd "$W" && PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/critest" -runtime-endpoint "$EP" -image-endpoint "$EP" \
    -runtime-service-timeout 60s -image-service-timeout 120s $PAR \
    -ginkgo.timeout "$TIMEOUT" -ginkgo.no-color -ginkgo.json-report "$OUT/critest.json" \
    -ginkgo.junit-report "$OUT/junit.xml" "$@") > "$OUT/critest.log" 2>&1
rc=$?
set -e
cp "$W/c/daemon.log" "$OUT/daemon.log" 2>/dev/null || true
python3 - "$OUT/critest.json" > "$OUT/summary.txt" <<'EOF'
import json, sys
counts, failed = {}, []
for suite in json.load(open(sys.argv[1])):
    for s in suite.get("SpecReports") or []:
        if s.get("LeafNodeType") != "It":
            continue
        st = s.get("State")
        counts[st] = counts.get(st, 0) + 1
        if st not in ("passed", "skipped", "pending"):
            failed.append(" ".join(s.get("ContainerHierarchyTexts") or []) + " " + s.get("LeafNodeText", ""))
total = sum(counts.values())
print(f"critest: {counts.get('passed', 0)} passed, {total - counts.get('passed', 0) - counts.get('skipped', 0) - counts.get('pending', 0)} failed, {counts.get('skipped', 0)} skipped of {total}")
for f in failed:
    print("  FAILED:", f)
EOF
cat "$OUT/summary.txt"
[ $rc = 0 ] && exit 0 || exit 1
