#!/usr/bin/env bash
# Pull of the busybox image (built from busybox-static) from a local
# docker-registry into an empty store, inside a private network namespace:
# `skiff pull` (fetch + verify + unpack) beside `skopeo copy` to an OCI dir
# (fetch only, no unpack), same run, N rounds each. Run as root.
# Usage: bench/pull-busybox.sh [path/to/skiff] [rounds]
set -euo pipefail
SKIFF=${1:-target/x86_64-unknown-linux-gnu/release/skiff}
N=${2:-5}
bash "$(dirname "$0")/../tests/support/install-image-deps.sh"
NS=skiff-bench-$$
W=$(mktemp -d)
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    ip netns delete "$NS" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir -p "$W/storage"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:5000}\n' "$W/storage" >"$W/config.yml"
ip netns exec "$NS" docker-registry serve "$W/config.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do ip netns exec "$NS" curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.1; done
umoci init --layout "$W/oci" && umoci new --image "$W/oci:latest"
umoci unpack --image "$W/oci:latest" "$W/bundle" >/dev/null
mkdir -p "$W/bundle/rootfs/bin" && cp /bin/busybox "$W/bundle/rootfs/bin/busybox"
for a in sh ls cat; do ln -s busybox "$W/bundle/rootfs/bin/$a"; done
umoci repack --image "$W/oci:latest" "$W/bundle"
ip netns exec "$NS" skopeo copy --quiet --dest-tls-verify=false "oci:$W/oci:latest" docker://127.0.0.1:5000/busybox:latest
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
echo "round skiff_pull_ms skopeo_copy_ms"
for i in $(seq "$N"); do
    a=$(ms ip netns exec "$NS" "$SKIFF" --root "$W/root-$i" pull --registries /nonexistent 127.0.0.1:5000/busybox:latest)
    b=$(ms ip netns exec "$NS" skopeo copy --quiet --src-tls-verify=false docker://127.0.0.1:5000/busybox:latest "oci:$W/copy-$i:latest")
    echo "$i $a $b"
done
