#!/bin/sh
# The shipped binaries: `cargo build --profile dist`, then for each the debug
# information split into target/dist/<bin>.debug (kept for crash reports: `gdb`,
# `addr2line -e berth.debug` and `eu-stack` find it through the binary's debuglink)
# and a stripped target/dist/<bin>.
#   scripts/dist.sh  → target/dist/berth and target/dist/berth-shim (shipped, installed
#                      side by side), target/dist/berth.debug, target/dist/berth-shim.debug
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build --profile dist -p berth
for bin in target/dist/berth target/dist/berth-shim; do
    objcopy --only-keep-debug "$bin" "$bin.debug"
    strip --strip-all "$bin"
    objcopy --add-gnu-debuglink="$bin.debug" "$bin"
    ls -l "$bin" "$bin.debug"
done
