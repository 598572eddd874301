#!/bin/bash
# The resident and proportional size of berth's shims, for two berth binaries side by
# side in one run (each on a fresh daemon over the same data root): N idle `sleep`
# containers, measured once their shims have gone quiet (a shim trims after 3 s idle).
# The usual pair: a copy of `berth` alone in a directory (its shims run from `berth`
# itself) against the build's `target/release/berth` (its shims from `berth-shim`
# beside it).
# Usage (root): bench/daemon/shim-memory.sh A-binary B-binary [containers] [rounds]
#   results → bench/results/shim-memory.md (OUT=name.md for another name)
set -euo pipefail
a=$1 b=$2 n=${3:-10} rounds=${4:-2}
top=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
name=smberth net=22 first=$a
. "$top/bench/lib/two-berths.sh"
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
rows=
for r in $(seq "$rounds"); do
    for which in A B; do
        bin=$a; [ $which = B ] && bin=$b
        start "$bin"
        for i in $(seq "$n"); do $docker -H "$B" run -d busybox sleep 3600 >/dev/null; done
        sleep 6
        shims=$(pgrep -f "^berth shim $work/") zygote=$(pgrep -f "^berth shim-zygote $work/" | head -1)
        rss=0 pss=0 anon=0 c=0
        for p in $shims; do rss=$((rss + $(kb $p Rss))); pss=$((pss + $(kb $p Pss))); anon=$((anon + $(kb $p Anonymous))); c=$((c + 1)); done
        exe=$(readlink "/proc/$(echo $shims | awk '{print $1}')/exe")
        rows+="| $which, round $r | $(basename "$exe") | $c | $((rss / c)) | $((pss / c)) | $((anon / c)) | $(kb $zygote Rss) |"$'\n'
        $docker -H "$B" rm -f $($docker -H "$B" ps -aq) >/dev/null
        stop
    done
done
out=$top/bench/results/${OUT:-shim-memory.md}
{
echo "# berth's shims: resident and proportional size, two binaries side by side"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD)."
echo "A: \`$a\`; B: \`$b\`. $n idle \`busybox sleep\` containers per daemon, measured 6 s after the last start (kB, means over the shims)."
echo
echo "| build | shims run from | shims | RSS | PSS | anonymous | zygote RSS |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
echo
echo "Command: \`bench/daemon/shim-memory.sh $a $b $n $rounds\`"
} >"$out"
cat "$out"
