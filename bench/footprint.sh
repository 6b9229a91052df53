#!/usr/bin/env bash
# Issue 18 figures: what an edge box pays for skiff, beside the peers that
# run here, measured in the same run (k3s cannot be installed here: no
# downloads outside the package registries; BENCHMARKS.md quotes its
# published figures).
#
# (a) Size: skiff's release binary (packaging/build-release.sh: fat LTO,
#     stripped, static) beside the binaries Debian's docker.io runs
#     (dockerd, containerd, containerd-shim-runc-v2, runc, docker-init)
#     and etcd (etcd-server), the store under k3s's HA mode.
# (b) Cold start: `skiff server` with its in-process agent on a fresh data
#     dir until its Node says Ready=True; RUNS runs, median. Peer: dockerd
#     (with its containerd) on a fresh data root until /_ping answers.
# (c) Idle memory, 30 s after ready: the server+agent process (VmRSS and
#     PSS); dockerd + containerd together.
# (d) Bytes written to storage per minute by the server process
#     (/proc/PID/io write_bytes) over WRITE_SECS: idle with no pods, then
#     with 30 busybox pods running. Peer: an idle etcd over the same
#     window.
#
# Usage: bench/footprint.sh [RUNS=10] [WRITE_SECS=300]
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
RUNS="${1:-10}"
WRITE_SECS="${2:-300}"
NODE=bench-node

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
have_etcd || need+=(etcd-server)
for p in umoci skopeo; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the services it installs: this run starts its own.
systemctl disable --now docker.service docker.socket containerd.service etcd.service >/dev/null 2>&1 || true

if [ -z "${SKIFF_BIN:-}" ] && [ -z "${BENCH_NO_BUILD:-}" ]; then
    "$REPO_DIR/packaging/build-release.sh" --out "$REPO_DIR/dist" >&2
    (cd "$REPO_DIR" && cargo build --release -q --example apibench)
fi
[ -x "$SKIFF" ] && [ -x "$APIBENCH" ] || { echo "bench: missing $SKIFF or $APIBENCH" >&2; exit 1; }
netns_up
cd "$WORK"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bin_path() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || { [ -x "/usr/libexec/docker/$1" ] && echo "/usr/libexec/docker/$1"; } || true; }

echo "== (a) binary size"
echo "skiff $("$SKIFF" --version | awk '{print $2}') (release, static, stripped): $(mib "$(stat -c %s "$SKIFF")")"
total=0; parts=""
for b in dockerd containerd containerd-shim-runc-v2 runc docker-init docker-proxy; do
    p=$(bin_path "$b"); [ -n "$p" ] || continue
    s=$(stat -L -c %s "$p"); total=$((total + s)); parts="$parts $b $(mib "$s");"
done
echo "docker.io $(dockerd --version | awk '{print $3}' | tr -d ,) daemon side: $(mib "$total") in all ($parts )"
echo "etcd $(etcd --version | head -1 | awk '{print $3}'): $(mib "$(stat -c %s "$(bin_path etcd)")")"

echo "== (b) cold start, fresh data dir, median of $RUNS"
starts=()
for i in $(seq 1 "$RUNS"); do
    d="$WORK/cold-$i"; mkdir -p "$d"
    starts+=("$(in_net "$APIBENCH" startup --url "https://127.0.0.1:$PORT/api/v1/nodes/$NODE" \
        --token-file "$d/server/cred/tokens.csv" -- "$SKIFF" --root "$d" --run-dir "$d/run" server --data-dir "$d" \
        --bind-address 127.0.0.1 --https-listen-port "$PORT" --node-name "$NODE" \
        --pod-log-dir "$d/pod-logs" --write-kubeconfig "$d/kubeconfig.yaml" \
        | sed -n 's/^ready_ms=//p')")
    killall_node "$d"
done
echo "skiff server+agent to Node Ready: median_ms=$(printf '%s\n' "${starts[@]}" | median) all=[${starts[*]}]"

# dockerd in the namespace (nsenter, not ip netns exec, which hides the
# cgroup mounts), its own data and exec roots, no bridge or iptables.
start_dockerd() { # dir
    nsenter --net="/run/netns/$NS" dockerd --data-root "$1/data" --exec-root "$1/exec" \
        --pidfile "$1/pid" -H "unix://$1/sock" --bridge none --iptables=false --ip6tables=false \
        >"$1.log" 2>&1 &
    DOCKERD_PID=$!
    PIDS+=("$DOCKERD_PID")
}
stop_dockerd() {
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
starts=()
for i in $(seq 1 "$RUNS"); do
    d="$WORK/docker-$i"; mkdir -p "$d"
    t0=$(now_ms)
    start_dockerd "$d"
    for _ in $(seq 1 6000); do
        curl -s --max-time 1 --unix-socket "$d/sock" http://d/_ping 2>/dev/null | grep -q OK && break
        sleep 0.005
    done
    starts+=("$(($(now_ms) - t0))")
    stop_dockerd
done
echo "dockerd+containerd to /_ping: median_ms=$(printf '%s\n' "${starts[@]}" | median) all=[${starts[*]}]"

echo "== (c) idle memory, 30 s after ready"
kib() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$2/status"; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
d="$WORK/skiff"
trap 'kill_started; killall_node "$d"; cleanup' EXIT INT TERM
start_node "$d"
CA="$(skiff_ca "$d")"; TOKEN="$(skiff_token "$d")"
URL="https://127.0.0.1:$PORT"
source "$BENCH_DIR/idle-pods.sh"
wait_node_ready
sleep 30
echo "skiff server+agent: VmRSS $(kib VmRSS "$SKIFF_PID") KiB, PSS $(pss "$SKIFF_PID") KiB"
start_dockerd "$WORK/docker-idle"
sleep 30
ctr=$(pgrep -P "$DOCKERD_PID" containerd | head -1)
echo "dockerd+containerd: VmRSS $(( $(kib VmRSS "$DOCKERD_PID") + $(kib VmRSS "$ctr") )) KiB, PSS $(( $(pss "$DOCKERD_PID") + $(pss "$ctr") )) KiB"
stop_dockerd

echo "== (d) bytes written per minute, ${WRITE_SECS} s each"
written() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }
per_min() { awk -v b="$1" -v s="$WRITE_SECS" 'BEGIN { printf "%.1f KiB/min", b / 1024 / s * 60 }'; }
# etcd idle alongside skiff idle: the same window, separate processes.
# shellcheck disable=SC2046
in_net $(etcd_cmd "$WORK/etcd") >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS+=("$ETCD_PID")
sleep 5
s0=$(written "$SKIFF_PID"); e0=$(written "$ETCD_PID")
sleep "$WRITE_SECS"
s1=$(written "$SKIFF_PID"); e1=$(written "$ETCD_PID")
echo "skiff server+agent, idle, no pods: $(per_min $((s1 - s0)))"
echo "etcd, idle: $(per_min $((e1 - e0)))"
kill -TERM "$ETCD_PID" 2>/dev/null || true

busybox_image "$WORK/busybox.tar" >/dev/null
in_net "$SKIFF" --root "$d" --run-dir "$d/run" load -i "$WORK/busybox.tar" >/dev/null
make_idle_pods
sleep 30
s0=$(written "$SKIFF_PID")
sleep "$WRITE_SECS"
s1=$(written "$SKIFF_PID")
echo "skiff server+agent, 30 pods running: $(per_min $((s1 - s0)))"
delete_idle_pods
