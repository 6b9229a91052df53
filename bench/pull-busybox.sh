#!/usr/bin/env bash
# Image pull figures (issue 4), all inside a private network namespace with a
# local docker-registry on 127.0.0.1:5000, each tool into an EMPTY store per
# round, same run:
#
#   skiff pull     fetch + verify + unpack into snapshots (--root per round)
#   skopeo copy    fetch + verify into an OCI dir, no unpack (lower bound)
#   podman pull    Debian's podman: fetch + unpack into containers/storage.
#                  Its settings: --root/--runroot in a temp dir per round,
#                  --storage-driver overlay (what a root podman uses),
#                  --cgroup-manager cgroupfs --events-backend file (no systemd
#                  here), CONTAINERS_REGISTRIES_CONF pointing at a temp file
#                  with [[registry]] location="127.0.0.1:5000" insecure=true,
#                  and --tls-verify=false.
#   docker pull    Debian's docker.io: a private dockerd in the namespace
#                  (--data-root/--exec-root/socket in the temp dir, overlay2,
#                  --bridge none --iptables=false; 127.0.0.0/8 registries are
#                  insecure by default); `docker rmi` + `image prune -a`
#                  between rounds empties its store. dockerd is started with
#                  nsenter --net (ip netns exec would hide /sys/fs/cgroup).
#                  Skipped, with the reason printed, if it cannot start.
#
# Then a larger image: a Debian bookworm minbase rootfs (debootstrap from the
# Debian mirror) split into 4 layers with `umoci insert`, pushed with skopeo;
# skiff's unpack throughput (uncompressed layer bytes / pull time) beside
# podman's. Run as root.
# Usage: bench/pull-busybox.sh [path/to/skiff] [rounds] [--no-large]
set -euo pipefail
SKIFF=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release/skiff}")
N=${2:-5}
LARGE=${3:-}
bash "$(dirname "$0")/../tests/support/install-image-deps.sh"
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -z "$LARGE" ] && { command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap); }
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
NS=skiff-bench-$$
W=$(mktemp -d)
REG_PID=
DOCKERD_PID=
cleanup() {
    # Best effort to the end: one failed step must not skip the others.
    set +e +o pipefail
    [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null || true
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
    # podman/dockerd leave overlay mounts under the temp dir: unmount only those.
    grep -o " $W[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    ip netns delete "$NS" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
mkdir -p "$W/storage"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:5000}\n' "$W/storage" >"$W/config.yml"
# Not through in_ns: a backgrounded shell function is a subshell, and $!
# would be its PID, not the registry's (the kill in cleanup missed it).
ip netns exec "$NS" docker-registry serve "$W/config.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do in_ns curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.1; done
umoci init --layout "$W/oci" && umoci new --image "$W/oci:latest"
umoci unpack --image "$W/oci:latest" "$W/bundle" >/dev/null
mkdir -p "$W/bundle/rootfs/bin" && cp /bin/busybox "$W/bundle/rootfs/bin/busybox"
for a in sh ls cat; do ln -s busybox "$W/bundle/rootfs/bin/$a"; done
umoci repack --image "$W/oci:latest" "$W/bundle"
umoci config --image "$W/oci:latest" --os linux --architecture amd64
in_ns skopeo copy --quiet --dest-tls-verify=false "oci:$W/oci:latest" docker://127.0.0.1:5000/busybox:latest

printf '[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n' >"$W/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$W/registries.conf
podman_pull() { # $1 = store dir, $2 = image
    in_ns podman --root "$1/root" --runroot "$1/run" --storage-driver overlay \
        --cgroup-manager cgroupfs --events-backend file pull -q --tls-verify=false "$2"
}

DOCKER=
mkdir -p "$W/docker"
# nsenter, not `ip netns exec`: the latter mounts a fresh /sys, which hides
# /sys/fs/cgroup from dockerd ("Devices cgroup isn't mounted").
nsenter --net="/run/netns/$NS" dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/pid" \
    -H "unix://$W/docker/sock" --storage-driver overlay2 --bridge none --iptables=false \
    --ip6tables=false --ip-masq=false >"$W/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 100); do
    docker -H "unix://$W/docker/sock" version >/dev/null 2>&1 && { DOCKER=1; break; }
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$DOCKER" ]; then
    echo "# docker: dockerd did not start here; last lines of its log:"
    tail -n 5 "$W/dockerd.log" | sed 's/^/#   /'
fi
dk() { docker -H "unix://$W/docker/sock" "$@"; }

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

IMG=127.0.0.1:5000/busybox:latest
echo "## busybox pull, empty store each round (ms)"
echo "round skiff skopeo podman docker"
: >"$W/r.skiff"; : >"$W/r.skopeo"; : >"$W/r.podman"; : >"$W/r.docker"
for i in $(seq "$N"); do
    a=$(ms in_ns "$SKIFF" --root "$W/root-$i" pull -q --registries /nonexistent "$IMG")
    b=$(ms in_ns skopeo copy --quiet --src-tls-verify=false "docker://$IMG" "oci:$W/copy-$i:latest")
    c=$(ms podman_pull "$W/podman-$i" "$IMG")
    d=-
    if [ -n "$DOCKER" ]; then
        d=$(ms dk pull -q "$IMG")
        dk rmi -f "$IMG" >/dev/null && dk image prune -af >/dev/null
    fi
    echo "$i $a $b $c $d"
    echo "$a" >>"$W/r.skiff"; echo "$b" >>"$W/r.skopeo"; echo "$c" >>"$W/r.podman"
    [ "$d" != - ] && echo "$d" >>"$W/r.docker"
    rm -rf "$W/root-$i" "$W/copy-$i"
done
echo "median $(median <"$W/r.skiff") $(median <"$W/r.skopeo") $(median <"$W/r.podman") $(median <"$W/r.docker")"

[ -n "$LARGE" ] && exit 0
echo
echo "## larger image: Debian bookworm minbase (debootstrap), 4 layers"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debootstrap --variant=minbase bookworm "$W/rootfs" "$MIRROR" >"$W/debootstrap.log" 2>&1 \
    || { echo "# debootstrap failed:"; tail -n 5 "$W/debootstrap.log"; exit 1; }
umoci init --layout "$W/big" && umoci new --image "$W/big:latest"
umoci config --image "$W/big:latest" --os linux --architecture amd64
# Split along the tree: /usr/lib, the rest of /usr, /var, everything else.
mkdir -p "$W/split/usr-rest" "$W/split/other"
mv "$W/rootfs/usr/lib" "$W/split/usr-lib"
mv "$W/rootfs/var" "$W/split/var"
for e in "$W/rootfs/usr"/*; do mv "$e" "$W/split/usr-rest/"; done
for e in "$W/rootfs"/*; do [ "$(basename "$e")" = usr ] || mv "$e" "$W/split/other/"; done
umoci insert --image "$W/big:latest" "$W/split/usr-lib" /usr/lib
umoci insert --image "$W/big:latest" "$W/split/usr-rest" /usr
umoci insert --image "$W/big:latest" "$W/split/var" /var
umoci insert --image "$W/big:latest" "$W/split/other" /
in_ns skopeo copy --quiet --dest-tls-verify=false "oci:$W/big:latest" docker://127.0.0.1:5000/debian:minbase
BIG=127.0.0.1:5000/debian:minbase
echo "round skiff_ms skiff_MB podman_ms"
: >"$W/b.skiff"; : >"$W/b.podman"; : >"$W/b.mbs"
for i in $(seq 3); do
    a=$(ms in_ns "$SKIFF" --root "$W/broot-$i" pull -q --registries /nonexistent "$BIG")
    bytes=$(in_ns "$SKIFF" --root "$W/broot-$i" inspect "$BIG" | awk -F': ' '/"Size"/ {gsub(/,/,"",$2); print $2; exit}')
    c=$(ms podman_pull "$W/bpodman-$i" "$BIG")
    mb=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b/1e6}')
    echo "$i $a $mb $c"
    echo "$a" >>"$W/b.skiff"; echo "$c" >>"$W/b.podman"
    awk -v b="$bytes" -v t="$a" 'BEGIN {printf "%.1f\n", b/1e6/(t/1000)}' >>"$W/b.mbs"
    rm -rf "$W/broot-$i"
done
echo "median skiff $(median <"$W/b.skiff") ms, podman $(median <"$W/b.podman") ms; skiff pull+unpack throughput $(median <"$W/b.mbs") MB/s (uncompressed)"
