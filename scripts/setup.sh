#!/bin/sh
# Installs what berth needs on a fresh Debian 12 machine (run as root).
#   scripts/setup.sh          what building and running berth needs
#   scripts/setup.sh --test   plus what the test suite needs (reference peers, tools)
#   scripts/setup.sh --bench  plus what bench/ compares against (iperf3, dockerd, containerd's CRI)
set -eu
# uidmap (newuidmap/newgidmap) and slirp4netns: rootless mode (docs/rootless.md).
build_pkgs="busybox-static libseccomp-dev pkg-config nftables iproute2 ca-certificates uidmap slirp4netns"
test_pkgs="runc crun skopeo docker-registry apache2-utils iptables procps psmisc curl python3-docker docker-compose util-linux e2fsprogs bzip2 xz-utils qemu-user-static binfmt-support prometheus chromium chromium-driver openssh-server openssh-client containernetworking-plugins gcc libc6-dev"
# (CNI plugins for the CRI's pod-network tests; gcc and libc6-dev build critest's image helpers.)
bench_pkgs="iperf3 docker.io bc containerd podman"
pkgs=$build_pkgs
for a in "$@"; do
    case "$a" in
        --test) pkgs="$pkgs $test_pkgs" ;;
        --bench) pkgs="$pkgs $bench_pkgs" ;;
    esac
done
export DEBIAN_FRONTEND=noninteractive
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    # Packages with services (docker.io, docker-registry) must not start them: a
    # dockerd started here would set the host's FORWARD policy to DROP.
    norc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && norc=1
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
    [ -n "$norc" ] && rm -f /usr/sbin/policy-rc.d
fi
# Rootless networking (slirp4netns, run by the user) opens /dev/net/tun: Debian's udev
# makes it 0666, but machines without udev (containers, minimal VMs) leave it 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    chmod 0666 /dev/net/tun
fi
# Debian's docker-registry package starts a registry on :5000 as a service; tests run
# their own on loopback ports, so the system one is not wanted.
if [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi
# Images of other architectures run through binfmt_misc (qemu-user-static registers
# its emulators with the F flag, so they work inside containers): the tests run one.
case " $* " in *" --test "*)
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    fi
    command -v update-binfmts >/dev/null && update-binfmts --enable >/dev/null 2>&1 || true
    ;;
esac
# Likewise prometheus: only its promtool is used. (The tests run their own sshd on a
# port of their own, with their own keys; a system sshd is left as it is.)
if [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
# schemathesis fuzzes the Engine API (scripts/fuzz-api.sh, crates/berth/tests/api_fuzz.rs);
# hypothesis pinned to a release of schemathesis 3.39's time (newer ones break it).
case " $* " in *" --test "*)
    if ! st --version 2>/dev/null | grep -q "3.39.16"; then
        command -v pip3 >/dev/null || apt-get install -y -qq --no-install-recommends python3-pip
        # (Debian's own python3 marks itself externally managed; these are test tools.)
        python3 -m pip install -q 'schemathesis==3.39.16' 'hypothesis==6.124.0' 2>/dev/null ||
            python3 -m pip install -q --break-system-packages 'schemathesis==3.39.16' 'hypothesis==6.124.0'
    fi
    ;;
esac
command -v cargo >/dev/null || { echo "setup.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
case " $* " in *" --test "*) want_nextest=1 ;; *) want_nextest="" ;; esac
if [ -n "$want_nextest" ] && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
