#!/bin/bash
# berth's builder vs dockerd's classic builder (Debian's docker.io), side by side on this
# machine, both driven by the same docker CLI (DOCKER_BUILDKIT=0: the classic protocol):
#   1. a fully cached rebuild of a 10-step Dockerfile (hyperfine, interleaved)
#   2. a cold build (--no-cache) of 5 RUN steps and a 50 MB COPY
#   3. sending a 200 MB context: MB/s next to raw bytes through a unix socket (socat)
# Usage (root): bench/build/run.sh [runs]        results → bench/results/build.md
# It installs docker.io, hyperfine and socat if missing, runs dockerd on its own roots
# and socket with --iptables=false (no host firewall changes), removes everything after.
set -euo pipefail
runs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
for p in dockerd:docker.io hyperfine:hyperfine socat:socat; do
    command -v "${p%%:*}" >/dev/null || apt-get install -y -qq "${p##*:}" >/dev/null
done
work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
extra_cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; }
. "$top/bench/lib/side-by-side.sh"
export DOCKER_BUILDKIT=0

# 1. Ten steps, all cached after a first build.
mkdir -p "$work/ten"
cat >"$work/ten/Dockerfile" <<'DF'
FROM busybox
ENV A=1
ENV B=2
LABEL x=y
WORKDIR /app
COPY f1 /app/
RUN echo one > /one
COPY f2 /app/
RUN echo two > /two
EXPOSE 80
CMD ["sh"]
DF
echo 1 >"$work/ten/f1"; echo 2 >"$work/ten/f2"
for h in "$B" "$D"; do $docker -H "$h" build -q -t ten "$work/ten" >/dev/null 2>&1; done
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/cached.json" \
    -n berth "$docker -H $B build -q -t ten $work/ten" \
    -n dockerd "$docker -H $D build -q -t ten $work/ten" >"$work/cached.txt" 2>/dev/null

# 2. Cold: 5 RUN steps and a 50 MB COPY, no cache.
mkdir -p "$work/cold"
head -c 50M /dev/urandom >"$work/cold/blob"
cat >"$work/cold/Dockerfile" <<'DF'
FROM busybox
RUN echo 1 > /1
COPY blob /blob
RUN echo 2 > /2
RUN wc -c /blob > /size
RUN echo 4 > /4
RUN echo 5 > /5
DF
cold_runs=$(( runs / 3 )); [ "$cold_runs" -lt 3 ] && cold_runs=3
hyperfine -N --warmup 1 --runs "$cold_runs" --export-json "$work/cold.json" \
    -n berth "$docker -H $B build -q --no-cache -t cold $work/cold" \
    -n dockerd "$docker -H $D build -q --no-cache -t cold $work/cold" >"$work/cold.txt" 2>/dev/null

# 3. A 200 MB context (cached steps, so the time is the transfer and its unpacking).
mkdir -p "$work/big"
head -c 200M /dev/urandom >"$work/big/payload"
printf 'FROM busybox\nENV BIG=1\n' >"$work/big/Dockerfile"
for h in "$B" "$D"; do $docker -H "$h" build -q -t big "$work/big" >/dev/null 2>&1; done
hyperfine -N --warmup 1 --runs 5 --export-json "$work/big.json" \
    -n berth "$docker -H $B build -q -t big $work/big" \
    -n dockerd "$docker -H $D build -q -t big $work/big" >"$work/big.txt" 2>/dev/null
tar -C "$work/big" -cf "$work/big.tar" .
socat -u UNIX-LISTEN:"$work/sink.sock",fork OPEN:/dev/null &
spid=$!
sleep 0.3
raw=$(hyperfine -N --warmup 1 --runs 5 --export-json "$work/raw.json" "socat -u FILE:$work/big.tar UNIX-CONNECT:$work/sink.sock" 2>/dev/null >/dev/null; python3 -c "import json;print(json.load(open('$work/raw.json'))['results'][0]['median'])")

mean() { python3 -c "import json,sys;r=json.load(open(sys.argv[1]))['results'];print([x for x in r if x['command']==sys.argv[2]][0]['median'])" "$1" "$2"; }
ms() { python3 -c "print(f'{float(\"$1\")*1000:.1f}')"; }
ratio() { python3 -c "print(f'{float(\"$2\")/float(\"$1\"):.1f}x')"; }
mbs() { python3 -c "print(f'{200*1.048576/float(\"$1\"):.0f}')"; }
cb=$(mean "$work/cached.json" berth); cd_=$(mean "$work/cached.json" dockerd)
ob=$(mean "$work/cold.json" berth); od=$(mean "$work/cold.json" dockerd)
bb=$(mean "$work/big.json" berth); bd=$(mean "$work/big.json" dockerd)
out=$top/bench/results/build.md
{
echo "# berth's builder vs dockerd's classic builder"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD) (release), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,); the docker CLI $($docker version -f '{{.Client.Version}}' 2>/dev/null) drives both with DOCKER_BUILDKIT=0. Medians (hyperfine, interleaved)."
echo
echo "| | berth | dockerd | berth faster by |"
echo "|---|---:|---:|---:|"
echo "| fully cached rebuild, 10 steps (\`build -q\`, end to end) | $(ms "$cb") ms | $(ms "$cd_") ms | $(ratio "$cb" "$cd_") |"
echo "| cold build, 5 RUN + 50 MB COPY (\`--no-cache\`) | $(ms "$ob") ms | $(ms "$od") ms | $(ratio "$ob" "$od") |"
echo "| 200 MB context, cached steps | $(ms "$bb") ms ($(mbs "$bb") MB/s) | $(ms "$bd") ms ($(mbs "$bd") MB/s) | $(ratio "$bb" "$bd") |"
echo "| the same 200 MB tar through a unix socket into /dev/null (socat) | $(ms "$raw") ms ($(mbs "$raw") MB/s) | | |"
echo
echo "The context figure includes the docker CLI tarring the directory (it reads and"
echo "writes every byte), the transfer, and the daemon unpacking it; the socat line is"
echo "the socket alone."
echo
echo "Command: \`bench/build/run.sh $runs\`"
echo
echo '```'
cat "$work/cached.txt" "$work/cold.txt" "$work/big.txt"
echo '```'
} >"$out"
cat "$out"
