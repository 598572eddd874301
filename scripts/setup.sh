#!/bin/sh
# Installs what berth needs on a fresh Debian 12 machine (run as root).
#   scripts/setup.sh          what building and running berth needs
#   scripts/setup.sh --test   plus what the test suite needs (reference peers, tools)
set -eu
build_pkgs="busybox-static libseccomp-dev pkg-config nftables iproute2 ca-certificates"
test_pkgs="runc crun skopeo docker-registry apache2-utils iptables procps psmisc curl python3-docker docker-compose prometheus chromium chromium-driver openssh-server openssh-client"
pkgs=$build_pkgs
[ "${1:-}" = "--test" ] && pkgs="$build_pkgs $test_pkgs"
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
# Likewise prometheus: only its promtool is used. (The tests run their own sshd on a
# port of their own, with their own keys; a system sshd is left as it is.)
if [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
command -v cargo >/dev/null || { echo "setup.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
if [ "${1:-}" = "--test" ] && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
