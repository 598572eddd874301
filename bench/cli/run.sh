#!/bin/sh
# Client benchmark: the docker CLI and `berth` side by side against one stand-in daemon
# that answers with dockerd's recorded bytes (bench/cli/mockd.py replaying
# fixtures/api-traces), so the numbers compare the clients alone: start-up, /_ping
# negotiation, the request, JSON decoding and docker-format rendering.
# Results: bench/results/cli.{md,json}, with the exact hyperfine command.
#
#   bench/cli/run.sh [RUNS]     (builds nothing: run `cargo build --release -p berth` first)
set -eu
runs=${1:-200}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=$(command -v docker || true)
[ -x "$berth" ] || { echo "run 'cargo build --release -p berth' first ($berth missing)" >&2; exit 1; }
[ -n "$docker" ] || { echo "the docker CLI is not installed" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine not found" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-cli.XXXXXX)
sock=$work/d.sock
traces=$top/fixtures/api-traces
python3 "$top/bench/cli/mockd.py" "$sock" "$traces/ps.txt" "$traces/inspect.txt" "$traces/images.txt" "$traces/logs.txt" &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$work"' EXIT
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
# Both must print the same thing before we time them.
for c in "ps" "inspect trace-d" "images --format {{.ID}}" "logs trace-d"; do
    a=$("$docker" -H "unix://$sock" $c 2>&1 | sed 's/[0-9]* [a-z]* ago//g')
    b=$("$berth" -H "unix://$sock" $c 2>&1 | sed 's/[0-9]* [a-z]* ago//g')
    [ "$a" = "$b" ] || { echo "bench: outputs differ for '$c'" >&2; echo "$a" >&2; echo "$b" >&2; }
done

results=$top/bench/results
mkdir -p "$results"
export DOCKER_CONFIG=$work/config
cmd="hyperfine -N --warmup 10 --runs $runs \
 -n 'docker ps' '$docker -H unix://$sock ps' \
 -n 'berth ps' '$berth -H unix://$sock ps' \
 -n 'docker inspect' '$docker -H unix://$sock inspect trace-d' \
 -n 'berth inspect' '$berth -H unix://$sock inspect trace-d' \
 -n 'docker images' '$docker -H unix://$sock images' \
 -n 'berth images' '$berth -H unix://$sock images' \
 -n 'docker logs' '$docker -H unix://$sock logs trace-d' \
 -n 'berth logs' '$berth -H unix://$sock logs trace-d' \
 -n 'docker --help' '$docker --help' \
 -n 'berth --help' '$berth --help'"
eval "$cmd --export-markdown $results/cli.md --export-json $results/cli.json"
{
    echo
    echo "Command (bench/cli/run.sh $runs, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores):"
    echo
    echo '```'
    echo "$cmd"
    echo '```'
    echo
    echo "$("$docker" --version), berth $(cd "$top" && git rev-parse --short HEAD)"
} >> "$results/cli.md"
