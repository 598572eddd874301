#!/bin/sh
# Builds the `load` benchmark image as a classic docker-archive (what `docker save`
# writes: uncompressed layer tars, manifest.json, repositories): 4 layers cut from this
# machine's /usr (real binaries, headers and scripts), ~330 MB.
#
#   bench/image/make-archive.sh OUT.tar
set -eu
out=$1
work=$(mktemp -d /tmp/mkarchive.XXXXXX)
trap 'rm -rf "$work"' EXIT
: > "$work/layers.txt"
n=0
for spec in "usr/lib/gcc" "usr/include" "usr/lib/python3.11" "usr/lib/git-core"; do
    n=$((n + 1))
    mkdir -p "$work/l$n"
    tar --format=pax --numeric-owner --sort=name -C / -cf "$work/l$n/layer.tar" $spec
    echo "l$n $(sha256sum < "$work/l$n/layer.tar" | cut -d' ' -f1) $spec" >> "$work/layers.txt"
done
python3 - "$work" <<'PY'
import hashlib, json, os, sys
w = sys.argv[1]
layers = [l.split(" ", 2) for l in open(os.path.join(w, "layers.txt")).read().splitlines()]
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[1] for l in layers]},
    "history": [{"created_by": "bench layer: " + l[2]} for l in layers],
}, separators=(",", ":")).encode()
cid = hashlib.sha256(config).hexdigest()
open(os.path.join(w, cid + ".json"), "wb").write(config)
json.dump([{"Config": cid + ".json", "RepoTags": ["bench/load:1"],
            "Layers": [l[0] + "/layer.tar" for l in layers]}], open(os.path.join(w, "manifest.json"), "w"))
json.dump({"bench/load": {"1": layers[-1][1]}}, open(os.path.join(w, "repositories"), "w"))
print("bench image sha256:" + cid)
PY
rm "$work/layers.txt"
tar --numeric-owner -C "$work" -cf "$out" .
echo "$out: $(du -m "$out" | cut -f1) MB, 4 layers"
