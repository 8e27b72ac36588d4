#!/usr/bin/env bash
# Builds an OCI image archive (oci-layout, index.json, blobs) from the busybox root
# filesystem tests/make-bundle.sh makes, for `ctr images import`: tests run containerd
# offline, so the sandbox (pause) image and the container image are made here.
#
# usage: tests/make-image.sh [--layer DIR]... [--expose PORT] [--env K=V]... OUT.tar NAME [CMD...]
#   NAME is the image's full reference (io.containerd.image.name), e.g. kuasar.invalid/busybox:test
#   --layer DIR adds DIR's files as one more layer on top (a file named .wh.X in it is a
#   whiteout of X); --expose records PORT/tcp in the image config; --env adds K=V to its
#   environment.
set -euo pipefail

die() { printf 'make-image: fatal: %s\n' "$*" >&2; exit 1; }

extra=()
expose=
envs=
while [ $# -gt 0 ]; do
	case "$1" in
	--layer) [ -d "${2:-}" ] || die "--layer needs a directory"; extra+=("$(cd "$2" && pwd)"); shift 2 ;;
	--expose) expose=${2:-}; shift 2 ;;
	--env) envs=$envs${2:-}$'\n'; shift 2 ;;
	*) break ;;
	esac
done
out=${1:-}
name=${2:-}
[ -n "$out" ] && [ -n "$name" ] || die "usage: $0 OUT.tar NAME [CMD...]"
shift 2
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(sh)

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/make-bundle.sh" "$work/bundle" >/dev/null
mkdir -p "$work/img/blobs/sha256"

blob() { # FILE -> prints its digest and moves it into blobs/
	local d
	d=$(sha256sum "$1" | cut -d' ' -f1)
	mv "$1" "$work/img/blobs/sha256/$d"
	echo "$d"
}

layers=()
add_layer() { # DIR: one more gzip layer; records "diff_id:digest:size"
	local diff_id size digest
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$work/layer.tar" .
	diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	gzip -n -9 "$work/layer.tar"
	size=$(stat -c %s "$work/layer.tar.gz")
	digest=$(blob "$work/layer.tar.gz")
	layers+=("$diff_id:$digest:$size")
}
add_layer "$work/bundle/rootfs"
for d in "${extra[@]}"; do
	add_layer "$d"
done

python3 - "$work" "$name" "$expose" "${layers[*]}" "$envs" "${cmd[@]}" <<'PY'
import hashlib, json, os, sys

work, name, expose, layers, envs = sys.argv[1:6]
layers = [l.split(":") for l in layers.split()]
cmd = sys.argv[6:]
blobs = os.path.join(work, "img", "blobs", "sha256")

def put(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return d, len(data)

config = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                      + [e for e in envs.split("\n") if e],
               "Cmd": cmd, "WorkingDir": "/"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[0] for l in layers]},
}
if expose:
    config["config"]["ExposedPorts"] = {expose + "/tcp": {}}
cd, cs = put(config)
manifest = {
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + l[1], "size": int(l[2])} for l in layers],
}
md, ms = put(manifest)
index = {
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": "sha256:" + md, "size": ms,
                   "platform": {"architecture": "amd64", "os": "linux"},
                   "annotations": {"io.containerd.image.name": name,
                                   "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
}
with open(os.path.join(work, "img", "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(work, "img", "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
PY
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/img" -cf "$out.tmp" .
mv "$out.tmp" "$out"
