#!/bin/sh
# The shipped binary: `cargo build --profile dist`, then the debug information split
# into target/dist/berth.debug (kept for crash reports: `gdb`, `addr2line -e
# berth.debug` and `eu-stack` find it through the binary's debuglink) and a stripped
# target/dist/berth.
#   scripts/dist.sh        → target/dist/berth (shipped), target/dist/berth.debug
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build --profile dist -p berth
bin=target/dist/berth
objcopy --only-keep-debug "$bin" "$bin.debug"
strip --strip-all "$bin"
objcopy --add-gnu-debuglink="$bin.debug" "$bin"
ls -l "$bin" "$bin.debug"
