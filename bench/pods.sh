#!/usr/bin/env bash
# Issue 13 figures: a server with its in-process agent (a one-node cluster),
# busybox loaded (image present, imagePullPolicy Never), in a network
# namespace of its own. Run as root.
#
# (a) Pod start latency: API create → the watch shows phase Running
#     (bench/podstart.py), one pod at a time ROUNDS times (p50, p99), then
#     30 and 100 pods created at once (time until the last one runs).
#     Kubernetes' SLO (p99 ≤ 5 s) is the anchor: k3s cannot run here.
# (b) Memory: server+agent RSS/PSS idle with no pods; then with 30 pods
#     running, the server's growth and the pods' shims (what skiff adds per
#     pod besides the workload's own processes). Measured first, before the
#     latency rounds' bursts grow the server's heap.
# (c) Idle CPU of server+agent (+ shims) over IDLE_SECS with 0 and 30 pods.
#
# Usage: bench/pods.sh [ROUNDS=50] [IDLE_SECS=300]
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
ROUNDS="${1:-50}"
IDLE="${2:-300}"
NODE=bench-node
build_release
netns_up
cd "$WORK"
busybox_image "$WORK/busybox.tar" >/dev/null
d="$WORK/skiff"
trap 'kill_started; killall_node "$d"; cleanup' EXIT INT TERM
start_node "$d"
in_net "$SKIFF" --root "$d" --run-dir "$d/run" load -i "$WORK/busybox.tar" >/dev/null
CA="$(skiff_ca "$d")"; TOKEN="$(skiff_token "$d")"
URL="https://127.0.0.1:$PORT"
source "$BENCH_DIR/idle-pods.sh"
wait_node_ready

kib() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$2/status"; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
# The shims run as `/proc/self/exe shim run --root <root> …`.
shims() { pgrep -f "shim run --root $d " || true; }
cpu_ticks() { # utime+stime of the server and every shim, in clock ticks
    local total=0 p
    for p in "$SKIFF_PID" $(shims); do
        [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}
idle_cpu() {
    local t0 t1 hz
    hz=$(getconf CLK_TCK)
    t0=$(cpu_ticks); sleep "$IDLE"; t1=$(cpu_ticks)
    awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$IDLE" 'BEGIN {printf "%.3f%% of a core (%.2f s of CPU in %d s)\n", (b-a)/hz/s*100, (b-a)/hz, s}'
}

# Memory and idle CPU first, on a server no burst of pods has grown.
echo "== memory, idle, no pods (after 5 s)"
sleep 5
before_rss=$(kib VmRSS "$SKIFF_PID"); before_pss=$(pss "$SKIFF_PID")
echo "server+agent: VmRSS $before_rss KiB, PSS $before_pss KiB"
echo "== idle CPU, no pods, ${IDLE} s"
echo "server+agent: $(idle_cpu)"

echo "== memory and idle CPU with 30 pods running"
make_idle_pods
sleep 5
after_rss=$(kib VmRSS "$SKIFF_PID"); after_pss=$(pss "$SKIFF_PID")
shim_rss=0; shim_pss=0; nshims=0
for p in $(shims); do
    shim_rss=$((shim_rss + $(kib VmRSS "$p"))); shim_pss=$((shim_pss + $(pss "$p"))); nshims=$((nshims + 1))
done
echo "server+agent: VmRSS $before_rss → $after_rss KiB, PSS $before_pss → $after_pss KiB"
echo "shims: $nshims, VmRSS $shim_rss KiB, PSS $shim_pss KiB in all"
awk -v r="$((after_rss - before_rss + shim_rss))" -v p="$((after_pss - before_pss + shim_pss))" -v n="$nshims" \
    'BEGIN {printf "added per pod: %.0f KiB RSS, %.0f KiB PSS (server growth + its shim; %d shims)\n", r/30, p/30, n}'
echo "server+agent+shims, 30 pods: $(idle_cpu)"
delete_idle_pods

echo "== pod start latency, one pod at a time, $ROUNDS rounds (ms)"
in_ns python3 "$BENCH_DIR/podstart.py" "$URL" "$CA" "$TOKEN" "$NODE" 1 "$ROUNDS" >"$WORK/lat-1" 2>"$WORK/lat-1.err" \
    || { cat "$WORK/lat-1.err" >&2; exit 1; }
sort -n "$WORK/lat-1" | awk '{a[NR]=$1} END {printf "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (n=%d)\n", a[int(NR*0.5+0.5)], a[int(NR*0.9+0.5)], a[int(NR*0.99+0.5)], a[NR], NR}'
for n in 30 100; do
    echo "== $n pods created at once"
    in_ns python3 "$BENCH_DIR/podstart.py" "$URL" "$CA" "$TOKEN" "$NODE" "$n" 1 2>&1 >"$WORK/lat-$n" | grep round
    sort -n "$WORK/lat-$n" | awk '{a[NR]=$1} END {printf "per pod: p50 %.0f  p99 %.0f  max %.0f ms\n", a[int(NR*0.5+0.5)], a[int(NR*0.99+0.5)], a[NR]}'
done
