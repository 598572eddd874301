#!/bin/sh
# (Re)starts Debian's docker-registry on 127.0.0.1:PORT with an empty storage under DIR.
# Used by run.sh, also as a hyperfine --prepare step (every push starts from nothing).
#   bench/registry/registry.sh DIR PORT
set -eu
dir=$1 port=$2
if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    while kill -0 "$(cat "$dir/pid")" 2>/dev/null; do sleep 0.05; done
fi
rm -rf "$dir/storage"
mkdir -p "$dir/storage"
cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
/usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
echo $! > "$dir/pid"
i=0
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do
    i=$((i + 1))
    [ $i -lt 200 ] || { echo "registry on port $port did not start: $(cat "$dir/log")" >&2; exit 1; }
    sleep 0.05
done
