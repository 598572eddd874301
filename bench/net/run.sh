#!/bin/sh
# Network benchmarks, side by side with Docker's userland proxy (run as root):
#   bench/net/run.sh            writes bench/results/net-<date>.md
# Measures TCP throughput (iperf3, 5 s per path) through the bridge, through a berth
# published port (in-kernel DNAT) and through docker-proxy (the binary of Debian's
# docker.io, run exactly as dockerd runs it for a loopback-published port) to the same
# container, container to container, and the time to create/remove 100 networks.
set -eu
cd "$(dirname "$0")/../.."
command -v iperf3 >/dev/null || { apt-get update -qq; apt-get install -y -qq iperf3 >/dev/null; }
work=$(mktemp -d /tmp/bnbench-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
# docker-proxy only: the package is unpacked into a scratch dir, not installed, so no
# dockerd is started and the host's firewall is left alone.
(cd "$work" && apt-get download docker.io >/dev/null 2>&1 && dpkg -x docker.io_*.deb x)
proxy="$work/x/usr/sbin/docker-proxy"
proxy_version=$(dpkg-deb -f "$work"/docker.io_*.deb Version)
cargo build --release -q -p berth-net --example netbench
out="bench/results/net-$(date -u +%Y%m%d-%H%M%S).md"
tmp="$work/report.md"
{
    echo "# berth-net benchmarks"
    echo
    echo "- command: \`bench/net/run.sh\` (\`target/release/examples/netbench <docker-proxy>\`)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); kernel $(uname -r); $(nproc) cores; $(iperf3 --version | head -1)"
    echo "- reference: docker-proxy from Debian docker.io $proxy_version"
    echo
    ./target/release/examples/netbench "$proxy"
} > "$tmp"
mv "$tmp" "$out"
cat "$out"
echo "written to $out" >&2
