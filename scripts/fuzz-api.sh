#!/bin/sh
# Fuzzes a running berth daemon's Engine API with schemathesis (stateless, seeded,
# bounded), from the Docker Engine API v1.51 spec (scripts/fuzz/docker-engine-api-v1.51.yaml).
#
#   scripts/fuzz-api.sh http://127.0.0.1:PORT
#
# schemathesis speaks HTTP over TCP: start the daemon with an extra
# `-H tcp://127.0.0.1:PORT --insecure-plain-tcp` (loopback only). Environment:
#   FUZZ_MAX_EXAMPLES  examples per operation (default 25)
#   FUZZ_SEED          hypothesis seed (default 51)
#   FUZZ_WORKERS       concurrent workers (default 2)
#   FUZZ_REPORT        where to write the JUnit XML report (optional)
#   FUZZ_SET_PATH      path parameters to pin, e.g. "id=fuzz name=fuzz": the generated
#                      requests then reach objects that exist instead of 404ing
#   FUZZ_STATEFUL=1    stateful mode only: sequences of calls that follow links added to
#                      the spec (a created container's Id into inspect, start, stop, kill,
#                      pause, update, rename, exec, commit, delete ...; a volume's Name into
#                      inspect and delete). Creates use the image `fuzz` and no host
#                      resources (hooks.py), so the sequences reach real containers.
# Exit status: schemathesis's (0 = every check passed on every example).
set -eu
url=${1:?usage: fuzz-api.sh http://127.0.0.1:PORT}
here=$(cd "$(dirname "$0")" && pwd)
spec_in=${FUZZ_SPEC:-$here/fuzz/docker-engine-api-v1.51.yaml}
work=$(mktemp -d /tmp/berth-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
command -v st >/dev/null || { echo "fuzz-api.sh: schemathesis (st) not found: scripts/setup.sh --test installs it" >&2; exit 2; }

# Operations left out (each for a reason, see docs/testing.md):
#  - streams that never end on their own: attach (+ws), events without until, session;
#  - operations that reach out to the network (registries, remote build contexts):
#    images/create (pull), push, search, auth, build, distribution, plugins pull/upgrade,
#    swarm join;
#  - networks/create: a generated subnet (say 0.0.0.0/1) would route the host's
#    traffic into a test bridge.
python3 - "$spec_in" "$work/spec.yaml" <<'PY'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
skip = {
    ("post", "/containers/{id}/attach"), ("get", "/containers/{id}/attach/ws"),
    ("get", "/events"), ("post", "/session"),
    ("post", "/images/create"), ("post", "/images/{name}/push"), ("get", "/images/search"),
    ("post", "/auth"), ("post", "/build"), ("get", "/distribution/{name}/json"),
    ("post", "/plugins/pull"), ("post", "/plugins/{name}/upgrade"), ("post", "/swarm/join"),
    ("post", "/networks/create"),
}
for path, ops in list(spec["paths"].items()):
    for method in list(ops):
        if (method, path) in skip:
            del ops[method]
    if not [m for m in ops if m != "parameters"]:
        del spec["paths"][path]
spec["schemes"] = ["http"]

# Stateful mode: Swagger 2.0 links (`x-links`, schemathesis' extension) from what creates
# an object to what uses it. Left out: operations that block until the container ends
# (wait, exec start, logs/stats streams) and attach.
import os
if os.environ.get("FUZZ_STATEFUL") == "1":
    def link(path, method, status, name, param, targets):
        responses = spec["paths"][path][method]["responses"]
        resp = responses.get(status) or responses[int(status)]  # YAML keys: 201, not "201"
        resp["x-links"] = {f"{name}{t}": {"operationId": t, "parameters": {param.get(t, "id"): f"$response.body#/{name}"}} for t in targets}
    link("/containers/create", "post", "201", "Id", {"ImageCommit": "query.container"}, [
        "ContainerInspect", "ContainerTop", "ContainerChanges", "ContainerStart", "ContainerStop",
        "ContainerRestart", "ContainerKill", "ContainerPause", "ContainerUnpause", "ContainerUpdate",
        "ContainerRename", "ContainerResize", "ContainerArchiveInfo", "ContainerExec", "ContainerDelete",
        "ImageCommit",
    ])
    link("/containers/{id}/exec", "post", "201", "Id", {}, ["ExecInspect", "ExecResize"])
    link("/volumes/create", "post", "201", "Name", {"VolumeInspect": "name", "VolumeDelete": "name"}, ["VolumeInspect", "VolumeDelete"])
    link("/commit", "post", "201", "Id", {"ImageInspect": "name", "ImageDelete": "name"}, ["ImageInspect", "ImageDelete"])
yaml.safe_dump(spec, open(sys.argv[2], "w"), sort_keys=False)
n = sum(len([m for m in ops if m != "parameters"]) for ops in spec["paths"].values())
print(f"fuzz-api.sh: {n} operations")
PY

report=""
if [ -n "${FUZZ_REPORT:-}" ]; then report="--junit-xml=$FUZZ_REPORT"; fi
set_path=""
for p in ${FUZZ_SET_PATH:-}; do set_path="$set_path --set-path $p"; done
stateful=""
if [ "${FUZZ_STATEFUL:-}" = 1 ]; then stateful="--stateful=links --experimental=stateful-only --experimental=stateful-test-runner"; fi
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$here/fuzz${PYTHONPATH:+:$PYTHONPATH}"
export FUZZ_STATEFUL=${FUZZ_STATEFUL:-}
# shellcheck disable=SC2086
exec st run "$work/spec.yaml" \
    --base-url "$url/v1.51" \
    --checks berth_no_server_error \
    --hypothesis-max-examples "${FUZZ_MAX_EXAMPLES:-25}" \
    --hypothesis-seed "${FUZZ_SEED:-51}" \
    --hypothesis-database=none \
    --hypothesis-suppress-health-check=all \
    --hypothesis-phases=explicit,generate \
    --request-timeout 20000 \
    --workers "${FUZZ_WORKERS:-2}" \
    --validate-schema false \
    --data-generation-method all \
    --no-color \
    $report $set_path $stateful
