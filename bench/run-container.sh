#!/usr/bin/env bash
# Container figures (issue 5), every tool on the same busybox image (Debian's
# busybox-static in one layer, built with umoci as tests/support/registry.rs
# builds it), same run. Run as root.
#
# (a) Start-to-exit wall time of one `true` container with no network,
#     median of N runs (default 20), microseconds taken around the command:
#   skiff   `skiff run --rm --network none busybox true` after `skiff load`
#           of the image; skipped with a message while `skiff run` does not
#           exist yet.
#   crun    `crun run -b BUNDLE ID` on an OCI bundle unpacked by umoci, args
#           ["true"], no terminal. "--network none" = the bundle's own new
#           network namespace (umoci's config.json has one: only a down lo).
#           crun 1.8 refuses hybrid hosts ("cgroups in hybrid mode not
#           supported, drop all controllers from cgroupv2"), so crun runs in a
#           PRIVATE mount namespace (`unshare -m`, util-linux makes its mounts
#           private) in which /sys/fs/cgroup/unified is unmounted; the host's
#           own mounts are never touched. The loop runs inside that namespace,
#           so the unshare itself is not timed.
#   runc    `runc run -b BUNDLE ID`, same bundle, on the host's mounts.
#   podman  `podman run --rm --network none busybox true`, rootful, image from
#           `podman load` of a docker-archive; --root/--runroot in a temp dir,
#           --storage-driver overlay, --cgroup-manager cgroupfs,
#           --events-backend file (no systemd here), and
#           --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 because podman's
#           default rlimits are refused here (root lacks CAP_SYS_RESOURCE).
#           Its default runtime is crun, so it runs in the same kind of
#           private mount namespace as crun; a second row uses --runtime runc
#           on the host's mounts.
#   docker  Debian's docker.io: a private dockerd (temp data/exec root and
#           socket, --bridge none, --iptables=false) in a private network
#           namespace; when it does not start, its reason is printed.
#           Daemons enter that namespace with `nsenter --net`, NOT `ip netns
#           exec`: the latter also mounts a fresh /sys in a new mount
#           namespace, which hides /sys/fs/cgroup ("Devices cgroup isn't
#           mounted", "no cgroup mount found in mountinfo").
# (b) Memory per running container: 20 `sleep` containers, then VmRSS and
#     PSS (smaps_rollup) of each per-container monitor process, median:
#     skiff's shim (once it exists), podman's conmon, containerd 1.6's
#     containerd-shim-runc-v2 (a private containerd on a temp root/state/
#     socket with its CRI plugin disabled, containers started with `ctr run -d`).
#
# GAP=SECONDS (default 0) sleeps that long, untimed, before each timed run.
# Why it matters: the first cgroup migration after a quiet spell waits for a
# kernel RCU grace period (5-15 ms here); runs closer together than one grace
# period skip it. Back-to-back loops of a fast runtime (crun) therefore never
# pay it, while a container started on an idle machine always does. GAP=0.5
# measures the latter for every tool.
#
# Usage: [GAP=S] bench/run-container.sh [path/to/skiff] [N]
set -euo pipefail
SKIFF=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release/skiff}" 2>/dev/null || echo "")
N=${2:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
for p in crun runc podman umoci skopeo jq; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

W=$(mktemp -d /tmp/skiff-ctrbench.XXXXXX)
NS=skiff-ctrbench-$$
CTRD_PID=
DOCKERD_PID=
# cgroup parents podman (libpod_parent), docker and containerd (its namespace,
# bench) create at the hierarchy roots; removed at the end only if this run
# created them, and only what is empty (rmdir).
NEW_CG=()
for h in $(awk '/ - cgroup2? / {print $5}' /proc/self/mountinfo); do
    for n in libpod_parent bench docker; do [ -e "$h/$n" ] || NEW_CG+=("$h/$n"); done
done
# PIDs of processes whose comm (at most 15 characters) is $1 and whose command line mentions this run's temp dir.
pids_of() { for p in $(pgrep -x "$1"); do tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$W" && echo "$p"; done; true; }
cleanup() {
    set +e +o pipefail
    if [ -n "$SKIFF" ] && [ -d "$W/skiff/containers" ]; then
        # shellcheck disable=SC2046
        "$SKIFF" --root "$W/skiff" rm -f $("$SKIFF" --root "$W/skiff" ps -aq) >/dev/null 2>&1
    fi
    P=(podman --root "$W/pm/root" --runroot "$W/pm/run" --storage-driver overlay
        --cgroup-manager cgroupfs --events-backend file)
    [ -d "$W/pm" ] && "${P[@]}" --runtime runc rm -af -t 0 >/dev/null 2>&1
    if [ -n "$CTRD_PID" ]; then
        for c in $(ctr -a "$W/ctrd/sock" -n bench containers ls -q 2>/dev/null); do
            ctr -a "$W/ctrd/sock" -n bench task delete -f "$c" >/dev/null 2>&1
            ctr -a "$W/ctrd/sock" -n bench containers delete "$c" >/dev/null 2>&1
        done
        # containerd tells each shim to exit after its task is deleted.
        for _ in $(seq 50); do [ -z "$(pids_of containerd-shim)" ] && break; sleep 0.1; done
        kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
    fi
    [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
    grep -o " $W[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # Monitors exit a moment after `rm`/`task delete` return: retry a while.
    for _ in $(seq 100); do
        left=
        for d in "${NEW_CG[@]:-}"; do
            [ -n "$d" ] && [ -d "$d" ] || continue
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$d" ] && left=1
        done
        [ -z "$left" ] && break
        sleep 0.1
    done
    ip netns delete "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

echo "# machine: $(nproc) CPU, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), kernel $(uname -r)"
echo "# cgroups: $(grep -c ' - cgroup ' /proc/self/mountinfo) v1 hierarchies, cgroup2 at: $(awk '/ - cgroup2 / {print $5}' /proc/self/mountinfo | tr '\n' ' ')"
echo "# versions: $(crun --version | head -1); $(runc --version | head -1); $(podman --version); $(conmon --version 2>/dev/null | head -1); $(containerd --version | awk '{print $1, $3}')"

# --- the image and the bundle --------------------------------------------------
# shellcheck source=bench/busybox-image.sh
. "$(dirname "$(realpath "$0")")/busybox-image.sh"
cd "$W"
busybox_image "$W/busybox.tar"
rm -rf bundle && umoci unpack --image oci:latest bundle >/dev/null
jq --arg r "$W/bundle/rootfs" '.process.args=["true"] | .process.terminal=false | .root.path=$r' \
    bundle/config.json >config.json && mv config.json bundle/config.json
jq -e '.linux.namespaces | map(.type) | index("network")' bundle/config.json >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# One start-to-exit time in microseconds of "$@" (output discarded).
us() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; e=$(date +%s%N); echo $(((e - s) / 1000)); }
# N timed runs of a command template; "{}" in it becomes the run number.
loop() {
    local i
    for i in $(seq 0 "$N"); do
        local t
        [ "${GAP:-0}" = 0 ] || sleep "$GAP"
        t=$(us "${@//\{\}/$i}")
        [ "$i" = 0 ] || echo "$t" # run 0 warms the page cache
    done
}
report() { printf '%-34s median %6.1f ms  (min %.1f, max %.1f, n=%d)\n' "$1" \
    "$(median <"$2" | awk '{print $1/1000}')" "$(sort -n "$2" | head -1 | awk '{print $1/1000}')" \
    "$(sort -n "$2" | tail -1 | awk '{print $1/1000}')" "$(wc -l <"$2")"; }
# Run "$@" in a private mount namespace without the cgroup2 mount (crun).
without_v2() { unshare -m bash -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' bash "$@"; }
export -f us loop
export N W GAP

echo
echo "## start-to-exit, busybox true, no network (ms)"
if [ -n "$SKIFF" ] && [ -x "$SKIFF" ] && "$SKIFF" run --help >/dev/null 2>&1; then
    "$SKIFF" --root "$W/skiff" load -i "$W/busybox.tar" >/dev/null
    loop "$SKIFF" --root "$W/skiff" run --rm --network none busybox true >"$W/t.skiff"
    report "skiff run --rm --network none" "$W/t.skiff"
else
    echo "skiff: skipped ('skiff run' does not exist in ${SKIFF:-the binary} yet)"
fi
without_v2 bash -c 'loop crun --root "$W/crun" run -b "$W/bundle" c{}' >"$W/t.crun"
report "crun run (cgroup2 hidden)" "$W/t.crun"
loop runc --root "$W/runc" run -b "$W/bundle" r{} >"$W/t.runc"
report "runc run" "$W/t.runc"

P=(podman --root "$W/pm/root" --runroot "$W/pm/run" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend file)
L=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
"${P[@]}" load -q -i "$W/busybox.tar" >/dev/null
without_v2 bash -c 'loop "$@"' bash "${P[@]}" run --rm --network none "${L[@]}" busybox true >"$W/t.podman"
report "podman run (crun, cgroup2 hidden)" "$W/t.podman"
loop "${P[@]}" --runtime runc run --rm --network none "${L[@]}" busybox true >"$W/t.podman-runc"
report "podman --runtime runc run" "$W/t.podman-runc"

ip netns add "$NS" && ip -n "$NS" link set lo up
mkdir -p "$W/docker"
nsenter --net="/run/netns/$NS" dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" \
    --pidfile "$W/docker/pid" -H "unix://$W/docker/sock" --storage-driver overlay2 --bridge none \
    --iptables=false --ip6tables=false --ip-masq=false >"$W/dockerd.log" 2>&1 &
DOCKERD_PID=$!
DOCKER=
for _ in $(seq 100); do
    docker -H "unix://$W/docker/sock" version >/dev/null 2>&1 && { DOCKER=1; break; }
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
done
if [ -n "$DOCKER" ]; then
    docker -H "unix://$W/docker/sock" load -q -i "$W/busybox.tar" >/dev/null
    loop docker -H "unix://$W/docker/sock" run --rm --network none busybox true >"$W/t.docker"
    report "docker run --rm --network none" "$W/t.docker"
else
    echo "docker: dockerd did not start here; last lines of its log:"
    tail -n 3 "$W/dockerd.log" | sed 's/^/    /'
fi

# --- memory per running container --------------------------------------------
echo
echo "## memory per running container, 20 x sleep (KiB per monitor process)"
# Median VmRSS and Pss of the given PIDs.
mem() {
    local p rss=() pss=()
    for p in "$@"; do
        rss+=("$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")")
        pss+=("$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")")
    done
    printf 'n=%d  RSS median %s KiB  PSS median %s KiB\n' "$#" \
        "$(printf '%s\n' "${rss[@]}" | median)" "$(printf '%s\n' "${pss[@]}" | median)"
}

if [ -n "$SKIFF" ] && [ -x "$SKIFF" ] && "$SKIFF" run --help >/dev/null 2>&1; then
    names=()
    for i in $(seq 20); do
        "$SKIFF" --root "$W/skiff" run -d --network none --name "s$i" busybox sleep 100000 >/dev/null
        names+=("s$i")
    done
    # A shim gives back its start-up pages after 1 s of quiet: measure the
    # steady state, as for the others (whose monitors are long started too).
    sleep 2
    # One `skiff shim run` per container; the shim names itself skiff-shim.
    shims=$(pids_of skiff-shim)
    # shellcheck disable=SC2086
    echo "skiff shim:                      $(mem $shims)"
    "$SKIFF" --root "$W/skiff" rm -f "${names[@]}" >/dev/null
else
    echo "skiff shim: skipped ('skiff run' does not exist yet)"
fi

for i in $(seq 20); do
    "${P[@]}" --runtime runc run -d --network none "${L[@]}" --name "s$i" busybox sleep 100000 >/dev/null
done
echo "conmon (podman, runc):           $(mem $(pids_of conmon))"
"${P[@]}" --runtime runc rm -af -t 0 >/dev/null

mkdir -p "$W/ctrd"
cat >"$W/ctrd/config.toml" <<EOF
version = 2
root = "$W/ctrd/root"
state = "$W/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctrd/sock"
EOF
nsenter --net="/run/netns/$NS" containerd --config "$W/ctrd/config.toml" >"$W/ctrd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do ctr -a "$W/ctrd/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
C=(ctr -a "$W/ctrd/sock" -n bench)
"${C[@]}" images import -q "$W/busybox.tar" >/dev/null 2>&1 || "${C[@]}" images import "$W/busybox.tar" >/dev/null
for i in $(seq 20); do
    "${C[@]}" run -d docker.io/library/busybox:latest "s$i" sleep 100000 >/dev/null
done
echo "containerd-shim-runc-v2 (1.6):   $(mem $(pids_of containerd-shim))"
