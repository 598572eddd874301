#!/bin/sh
# berth's registry server, two comparisons on loopback:
#  1. a pull through the pull-through cache (`berth registry serve --proxy-remote-url`)
#     on a warm cache against a direct pull from a plain server over the cache's own
#     storage: `berth registry pull --no-sync` of the ~320 MB, 4-layer bench image
#     (bench/registry/make-image.sh), and the HTTP part alone (manifest by tag and every
#     blob, read to /dev/null by curl);
#  2. blob GET throughput of the image's largest blob, berth's server against Debian's
#     docker-registry (distribution 2.8) serving the same image, side by side.
# Results go to bench/results/registry-cache.{md,json} and registry-blob-get.{md,json}.
#
#   bench/registry/cache.sh [RUNS]
#
# Needs `cargo build --release -p berth`, Debian's docker-registry, skopeo, pigz,
# hyperfine, curl and python3.
set -eu
runs=${1:-10}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${BERTH_BIN:-$top/target/release/berth}
[ -x "$berth" ] || { echo "run 'cargo build --release -p berth' first ($berth missing)" >&2; exit 1; }
for t in docker-registry skopeo pigz hyperfine curl python3; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
work=$(mktemp -d /tmp/bench-cache.XXXXXX)
image=${BENCH_IMAGE_DIR:-/var/tmp/berth-bench-registry-image}
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/dist/pid" ] && kill "$(cat "$work/dist/pid")" 2>/dev/null
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT
[ -f "$image/index.json" ] || sh "$top/bench/registry/make-image.sh" "$image"

# `berth registry serve` in the background; prints its port.
serve() {
    log=$1
    shift
    "$berth" registry serve --addr 127.0.0.1:0 "$@" >"$log" 2>&1 &
    pids="$pids $!"
    i=0
    until grep -q listening "$log"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "server did not start: $(cat "$log")" >&2; exit 1; }
        sleep 0.05
    done
    sed -n 's#.*http://127.0.0.1:\([0-9]*\).*#\1#p' "$log" | head -1
}

up=$(serve "$work/up.log" --root "$work/up")
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$image:bench" "docker://127.0.0.1:$up/bench/big:1"
cache=$(serve "$work/cache.log" --root "$work/cache" --proxy-remote-url "http://127.0.0.1:$up")
# Warm the cache: one pull through it.
"$berth" registry pull -q --no-sync --data-root "$work/warm" "127.0.0.1:$cache/bench/big:1" >/dev/null
rm -rf "$work/warm"
# A plain server over the cache's own storage (servers share the storage lock).
direct=$(serve "$work/direct.log" --root "$work/cache")

cat > "$work/fetch.sh" <<'SH'
#!/bin/sh
# Fetches bench/big:1 over HTTP: the manifest by tag, then every blob, to /dev/null.
set -eu
base=http://127.0.0.1:$1/v2/bench/big
m=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$base/manifests/1")
for d in $(echo "$m" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["config"]["digest"]); [print(l["digest"]) for l in m["layers"]]'); do
    curl -sf -o /dev/null "$base/blobs/$d"
done
SH
results=$top/bench/results
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
about="$(uname -r), $(nproc) cores; docker-registry $(docker-registry --version | awk '{print $3}'), berth $(git -C "$top" rev-parse --short HEAD)"

cmp="hyperfine --warmup 1 --runs $runs \
 --prepare 'rm -rf $work/pull' -n 'pull through the cache (warm)' '$berth registry pull -q --no-sync --data-root $work/pull 127.0.0.1:$cache/bench/big:1' \
 --prepare 'rm -rf $work/pull' -n 'pull from the same storage, direct' '$berth registry pull -q --no-sync --data-root $work/pull 127.0.0.1:$direct/bench/big:1' \
 --prepare 'true' -n 'HTTP only: through the cache (warm)' 'sh $work/fetch.sh $cache' \
 --prepare 'true' -n 'HTTP only: direct' 'sh $work/fetch.sh $direct'"
eval "$cmp --export-markdown $results/registry-cache.md --export-json $results/registry-cache.json"
{
    echo
    echo "A warm pull-through cache (\`berth registry serve --proxy-remote-url\`, which asks its upstream — a berth registry on loopback — for the tag's digest on every manifest-by-tag request) against a plain \`berth registry serve\` over the same storage. Image: 4 gzip layers, $(awk '{s+=$2} END {printf "%.0f", s/1e6}' "$image/layers.txt") MB compressed. Command (bench/registry/cache.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$cmp" | sed "s#$work#\$WORK#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/registry-cache.md"

# Blob GET: the largest layer, from berth's server and from distribution 2.8.
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sh "$top/bench/registry/registry.sh" "$work/dist" "$dport"
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$image:bench" "docker://127.0.0.1:$dport/bench/big:1"
big=$(sort -k2 -n "$image/layers.txt" | tail -1)
blob=sha256:$(echo "$big" | cut -d' ' -f1)
mb=$(echo "$big" | awk '{printf "%.0f", $2/1e6}')
get="hyperfine --warmup 2 --runs $runs \
 -n 'berth registry serve' 'curl -sf -o /dev/null http://127.0.0.1:$up/v2/bench/big/blobs/$blob' \
 -n 'distribution 2.8 (docker-registry)' 'curl -sf -o /dev/null http://127.0.0.1:$dport/v2/bench/big/blobs/$blob'"
eval "$get --export-markdown $results/registry-blob-get.md --export-json $results/registry-blob-get.json"
python3 - "$results/registry-blob-get.json" "$big" >> "$results/registry-blob-get.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2].split()[1])
print()
for x in r:
    print(f"- {x['command']}: {size / x['mean'] / 1e6:.0f} MB/s (mean of {len(x['times'])})")
PY
{
    echo
    echo "GET of one ${mb} MB blob over loopback (page cache warm; curl to /dev/null), both servers with their default settings. Command (bench/registry/cache.sh $runs, $stamp, $about):"
    echo
    echo '```'
    echo "$get" | sed "s#$work#\$WORK#g; s#$top#\$REPO#g"
    echo '```'
} >> "$results/registry-blob-get.md"
