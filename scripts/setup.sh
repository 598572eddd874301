#!/bin/sh
# Installs what berth needs on a fresh Debian 12 machine (run as root).
#   scripts/setup.sh          what building and running berth needs
#   scripts/setup.sh --test   plus what the test suite needs (reference peers, tools)
#   scripts/setup.sh --bench  plus what bench/ compares against (containerd's CRI)
set -eu
build_pkgs="busybox-static libseccomp-dev pkg-config nftables iproute2 ca-certificates"
# CNI plugins for the CRI's pod-network tests; gcc and libc6-dev build critest's image helpers.
test_pkgs="runc crun skopeo docker-registry apache2-utils iptables procps psmisc curl python3-docker docker-compose containernetworking-plugins gcc libc6-dev"
bench_pkgs="containerd"
pkgs=$build_pkgs
[ "${1:-}" = "--test" ] && pkgs="$build_pkgs $test_pkgs"
[ "${1:-}" = "--bench" ] && pkgs="$build_pkgs $test_pkgs $bench_pkgs"
export DEBIAN_FRONTEND=noninteractive
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
# Debian's docker-registry package starts a registry on :5000 as a service; tests run
# their own on loopback ports, so the system one is not wanted.
if [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi
command -v cargo >/dev/null || { echo "setup.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
if [ "${1:-}" != "" ] && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
