#!/usr/bin/env bash
# Seccomp cost (issue 10): start-to-exit wall time of one `true` container
# with no network, median of N runs (default 20), in one run:
#   skiff run --rm --network none busybox true            (default profile)
#   the same with --security-opt seccomp=unconfined
#   crun run on an OCI bundle (umoci) with skiff's default profile as its
#     linux.seccomp (copied from a skiff container's config.json, so both
#     filter the same rules; crun compiles it with libseccomp), and without.
# crun 1.8 refuses hybrid cgroup hosts, so it runs in a private mount
# namespace without /sys/fs/cgroup/unified, as in bench/run-container.sh.
# Run as root. Usage: bench/seccomp.sh [path/to/skiff] [N]
set -euo pipefail
SKIFF=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release/skiff}")
N=${2:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
for p in crun umoci skopeo jq; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
W=$(mktemp -d /tmp/skiff-seccompbench.XXXXXX)
cleanup() {
    set +e
    # shellcheck disable=SC2046
    "$SKIFF" --root "$W/skiff" rm -f $("$SKIFF" --root "$W/skiff" ps -aq 2>/dev/null) >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
echo "# machine: $(nproc) CPU, kernel $(uname -r); $(crun --version | head -1)"
# shellcheck source=bench/busybox-image.sh
. "$(dirname "$(realpath "$0")")/busybox-image.sh"
cd "$W"
busybox_image "$W/busybox.tar"
rm -rf bundle && umoci unpack --image oci:latest bundle >/dev/null
jq --arg r "$W/bundle/rootfs" '.process.args=["true"] | .process.terminal=false | .root.path=$r' \
    bundle/config.json >config.json && mv config.json bundle/config.json

"$SKIFF" --root "$W/skiff" load -i "$W/busybox.tar" >/dev/null
id=$("$SKIFF" --root "$W/skiff" run -d --network none busybox sleep 1000)
jq '.linux.seccomp' "$W/skiff/containers/$id/config.json" >seccomp.json
"$SKIFF" --root "$W/skiff" rm -f "$id" >/dev/null
echo "# profile: $(jq '.syscalls | length' seccomp.json) rules, default $(jq -r .defaultAction seccomp.json), arches $(jq -c .architectures seccomp.json)"
cp -a bundle bundle-seccomp
jq --slurpfile s seccomp.json '.linux.seccomp=$s[0]' bundle/config.json >bundle-seccomp/config.json

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
us() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; e=$(date +%s%N); echo $(((e - s) / 1000)); }
loop() { local i; for i in $(seq 0 "$N"); do t=$(us "${@//\{\}/$i}"); [ "$i" = 0 ] || echo "$t"; done; }
report() { printf '%-44s median %6.1f ms  (min %.1f, max %.1f, n=%d)\n' "$1" \
    "$(median <"$2" | awk '{print $1/1000}')" "$(sort -n "$2" | head -1 | awk '{print $1/1000}')" \
    "$(sort -n "$2" | tail -1 | awk '{print $1/1000}')" "$(wc -l <"$2")"; }
without_v2() { unshare -m bash -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' bash "$@"; }
export -f us loop
export N W

loop "$SKIFF" --root "$W/skiff" run --rm --network none busybox true >t.skiff
loop "$SKIFF" --root "$W/skiff" run --rm --network none --security-opt seccomp=unconfined busybox true >t.skiff-unconfined
without_v2 bash -c 'loop crun --root "$W/crun" run -b "$W/bundle-seccomp" s{}' >t.crun
without_v2 bash -c 'loop crun --root "$W/crun" run -b "$W/bundle" u{}' >t.crun-unconfined
report "skiff run --rm (default seccomp)" t.skiff
report "skiff run --rm (seccomp=unconfined)" t.skiff-unconfined
report "crun run (same profile, libseccomp)" t.crun
report "crun run (no seccomp)" t.crun-unconfined
