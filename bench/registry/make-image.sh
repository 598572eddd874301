#!/bin/sh
# Builds the benchmark image as an OCI image layout: 4 gzip layers (~320 MB compressed,
# ~1 GB unpacked) cut from this machine's /usr, so the content is real binaries, text
# and documentation rather than noise.
#
#   bench/registry/make-image.sh OUT_DIR
set -eu
out=$1
command -v pigz >/dev/null || { echo "pigz not found (apt-get install pigz)" >&2; exit 1; }
mkdir -p "$out/blobs/sha256"
: > "$out/layers.txt"
for spec in "usr/bin" "usr/lib/gcc usr/include" "usr/share/doc" "usr/lib/python3.11 usr/lib/git-core"; do
    # shellcheck disable=SC2086
    tar --format=pax --numeric-owner -C / -cf "$out/layer.tar" $spec
    diff_id=$(sha256sum < "$out/layer.tar" | cut -d' ' -f1)
    # -n: no name or time in the gzip header, so the blob is the same every time.
    pigz -6 -n < "$out/layer.tar" > "$out/layer.tgz"
    digest=$(sha256sum < "$out/layer.tgz" | cut -d' ' -f1)
    size=$(stat -c %s "$out/layer.tgz")
    mv "$out/layer.tgz" "$out/blobs/sha256/$digest"
    rm "$out/layer.tar"
    echo "$digest $size $diff_id $spec" >> "$out/layers.txt"
done
python3 - "$out" <<'PY'
import hashlib, json, os, sys
out = sys.argv[1]
layers = [l.split(" ", 3) for l in open(os.path.join(out, "layers.txt")).read().splitlines()]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(out, "blobs/sha256", d), "wb").write(data)
    return "sha256:" + d, len(data)
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[2] for l in layers]},
    "history": [{"created_by": "bench layer: " + l[3]} for l in layers],
}, separators=(",", ":")).encode()
cd, cs = put(config)
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + l[0], "size": int(l[1])} for l in layers],
}, separators=(",", ":")).encode()
md, ms = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
    "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
    open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
total = sum(int(l[1]) for l in layers)
print(f"bench image: {len(layers)} layers, {total/1e6:.0f} MB compressed, manifest {md}")
PY
