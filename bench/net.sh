#!/usr/bin/env bash
# Network figures (issue 6), in one run, inside a network namespace this
# script creates (the "node"); nothing is done to the host's interfaces,
# routes or firewall. Run as root.
#
# (a) Start-to-exit wall time of one `true` container, --network none against
#     the bridge network, median of N runs (default 20), for:
#       skiff   `skiff run --rm --network none|bridge busybox true`
#       docker  a private dockerd (temp data/exec root and socket) started
#               INSIDE the node namespace with its default bridge and iptables
#               (`nsenter --net`, so /sys/fs/cgroup stays visible); its
#               docker0 and rules exist only in that namespace.
#       podman  rootful, temp --root/--runroot, CNI backend (Debian's
#               containernetworking-plugins) with the CNI config and state in
#               temp dirs, run inside the node namespace; --runtime runc (crun
#               1.8 refuses hybrid cgroup hosts).
# (b) TCP throughput, 2 GiB per transfer, median of R runs (default 5), with
#     one tool everywhere: examples/tcpbench (static; bind-mounted read-only
#     into busybox containers), measured by the receiver from its first byte:
#       loopback            tcpbench on the node, 127.0.0.1 -> 127.0.0.1
#       container->container  client container -> server container's IP
#       published port      node -> 127.0.0.1:HOSTPORT -> DNAT -> container
#     The same three for docker when its daemon starts (docker's published
#     port goes through docker-proxy, its userland proxy, from localhost).
#
# Usage: bench/net.sh [path/to/skiff] [N] [R]
set -euo pipefail
SKIFF=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release/skiff}")
N=${2:-20}
R=${3:-5}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
# The throughput tool: beside the skiff binary (a release build's
# examples/), or $TCPBENCH, or built here.
TCPBENCH=${TCPBENCH:-"$(dirname "$SKIFF")/examples/tcpbench"}
if [ ! -x "$TCPBENCH" ]; then
    (cd "$REPO" && cargo build --release -q --example tcpbench)
    TCPBENCH="${CARGO_TARGET_DIR:-$REPO/target}/x86_64-unknown-linux-gnu/release/examples/tcpbench"
fi
[ -x "$TCPBENCH" ] || { echo "no tcpbench at $TCPBENCH" >&2; exit 1; }
need=()
for p in podman umoci skopeo jq; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

W=$(mktemp -d /tmp/skiff-netbench.XXXXXX)
NS=skiff-netbench-$$
DOCKERD_PID=
SRV_PID=
in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }
# Waits (bounded) until something listens on TCP port $1 in the namespace.
listening() { for _ in $(seq 100); do in_ns ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; return 1; }
cleanup() {
    set +eu +o pipefail
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
    in_ns "$SKIFF" --root "$W/skiff" --run-dir "$W/skiff-run" killall >/dev/null 2>&1
    if [ -n "$DOCKERD_PID" ]; then
        D=(docker -H "unix://$W/docker/sock")
        # shellcheck disable=SC2046
        "${D[@]}" rm -f $("${D[@]}" ps -aq) >/dev/null 2>&1
        kill "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$DOCKERD_PID" 2>/dev/null
        # Its containerd and container shims, by this run's paths only.
        for p in $(pgrep -x containerd) $(pgrep -x containerd-shim); do
            tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$W/" && kill "$p" 2>/dev/null
        done
    fi
    # shellcheck disable=SC2046
    [ -d "$W/pm" ] && in_ns "${P[@]}" rm -f -a >/dev/null 2>&1
    grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

echo "# machine: $(nproc) CPU, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), kernel $(uname -r)"
echo "# versions: $(podman --version); $(dockerd --version)"

# --- the image ---------------------------------------------------------------
# shellcheck source=bench/busybox-image.sh
. "$REPO/bench/busybox-image.sh"
cd "$W"
busybox_image "$W/busybox.tar"

ip netns add "$NS"
ip -n "$NS" link set lo up

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
us() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; e=$(date +%s%N); echo $(((e - s) / 1000)); }
loop() { local i; for i in $(seq 0 "$N"); do local t; t=$(us "$@"); [ "$i" = 0 ] || echo "$t"; done; }
ms() { median <"$1" | awk '{printf "%.1f", $1/1000}'; }
row() { printf '%-8s none %7s ms   bridge %7s ms   bridge/none %.2f\n' "$1" "$(ms "$2")" "$(ms "$3")" \
    "$(awk -v a="$(median <"$3")" -v b="$(median <"$2")" 'BEGIN {print a/b}')"; }

# --- skiff -------------------------------------------------------------------
S=(in_ns "$SKIFF" --root "$W/skiff" --run-dir "$W/skiff-run")
"${S[@]}" load -i "$W/busybox.tar" >/dev/null
echo
echo "## start-to-exit, busybox true (median of $N)"
loop "${S[@]}" run --rm --network none busybox true >"$W/t.skiff.none"
loop "${S[@]}" run --rm --network bridge busybox true >"$W/t.skiff.bridge"
row skiff "$W/t.skiff.none" "$W/t.skiff.bridge"

# --- podman (CNI, inside the namespace) -------------------------------------------
mkdir -p "$W/pm/cni-conf"
cat >"$W/pm/containers.conf" <<EOF
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "$W/pm/cni-conf"
EOF
export CONTAINERS_CONF="$W/pm/containers.conf"
P=(podman --root "$W/pm/root" --runroot "$W/pm/run" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend file --runtime runc)
L=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
if in_ns "${P[@]}" load -q -i "$W/busybox.tar" >/dev/null 2>"$W/podman.err" &&
    in_ns "${P[@]}" run --rm --network bridge "${L[@]}" busybox true 2>>"$W/podman.err"; then
    loop in_ns "${P[@]}" run --rm --network none "${L[@]}" busybox true >"$W/t.podman.none"
    loop in_ns "${P[@]}" run --rm --network bridge "${L[@]}" busybox true >"$W/t.podman.bridge"
    row podman "$W/t.podman.none" "$W/t.podman.bridge"
else
    echo "podman: skipped: $(tail -n 2 "$W/podman.err" | tr '\n' ' ')"
fi

# --- docker (its own daemon and bridge, inside the namespace) ------------------
mkdir -p "$W/docker"
# nsenter (not the in_ns function) so that $! is dockerd itself: nsenter
# execs it, where a function would put a subshell in between.
nsenter --net="/run/netns/$NS" -- dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" \
    --pidfile "$W/docker/pid" -H "unix://$W/docker/sock" --storage-driver overlay2 \
    >"$W/dockerd.log" 2>&1 &
DOCKERD_PID=$!
D=(docker -H "unix://$W/docker/sock")
DOCKER=
for _ in $(seq 100); do
    "${D[@]}" version >/dev/null 2>&1 && { DOCKER=1; break; }
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
done
if [ -n "$DOCKER" ]; then
    "${D[@]}" load -q -i "$W/busybox.tar" >/dev/null
    loop "${D[@]}" run --rm --network none busybox true >"$W/t.docker.none"
    loop "${D[@]}" run --rm busybox true >"$W/t.docker.bridge"
    row docker "$W/t.docker.none" "$W/t.docker.bridge"
else
    echo "docker: dockerd did not start; last lines of its log:"
    tail -n 3 "$W/dockerd.log" | sed 's/^/    /'
fi

# --- throughput --------------------------------------------------------------
echo
echo "## TCP throughput, 2 GiB per transfer, receiver-side Gbit/s (median of $R)"
gbit() { awk '{print $3}' "$1" | median; }
# loopback on the node
: >"$W/tp.lo"
for _ in $(seq "$R"); do
    # nsenter execs the server, so $! is its PID (cleanup stops it).
    nsenter --net="/run/netns/$NS" -- "$TCPBENCH" serve 5001 >>"$W/tp.lo" &
    SRV_PID=$!
    listening 5001
    in_ns "$TCPBENCH" send 127.0.0.1:5001 2048
    wait "$SRV_PID"
    SRV_PID=
done
LO=$(gbit "$W/tp.lo")
printf '%-44s %6s Gbit/s\n' "loopback on the node" "$LO"

# One transfer into a server container; $1: engine command (array name),
# $2: extra run flags for the server, $3: how the client sends (c2c|port).
through() {
    local -n E=$1
    local out="$2" how="$3" ip
    : >"$out"
    for i in $(seq "$R"); do
        "${E[@]}" run -d --name "srv$i" -p 5002:5001 -v "$TCPBENCH:/tcpbench:ro" busybox /tcpbench serve 5001 >/dev/null
        ip=$("${E[@]}" inspect "srv$i" | jq -r '.[0].NetworkSettings.IPAddress // .[0].NetworkSettings.Networks.bridge.IPAddress')
        sleep 0.3
        if [ "$how" = c2c ]; then
            "${E[@]}" run --rm -v "$TCPBENCH:/tcpbench:ro" busybox /tcpbench send "$ip:5001" 2048
        else
            in_ns "$TCPBENCH" send 127.0.0.1:5002 2048
        fi
        sleep 0.2
        "${E[@]}" logs "srv$i" | tail -n 1 >>"$out"
        "${E[@]}" rm -f "srv$i" >/dev/null
    done
}
report_tp() { local g; g=$(gbit "$2"); printf '%-44s %6s Gbit/s  (%.2f x loopback)\n' "$1" "$g" "$(awk -v a="$g" -v b="$LO" 'BEGIN {print a/b}')"; }

through S "$W/tp.skiff.c2c" c2c
report_tp "skiff container -> container" "$W/tp.skiff.c2c"
through S "$W/tp.skiff.port" port
report_tp "skiff node -> published port (DNAT)" "$W/tp.skiff.port"
if [ -n "$DOCKER" ]; then
    through D "$W/tp.docker.c2c" c2c
    report_tp "docker container -> container" "$W/tp.docker.c2c"
    through D "$W/tp.docker.port" port
    report_tp "docker node -> published port (docker-proxy)" "$W/tp.docker.port"
fi
