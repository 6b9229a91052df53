#!/usr/bin/env bash
# Issue 14 figures, on a one-node cluster (server + in-process agent,
# busybox loaded, imagePullPolicy Never), in a network namespace of its own:
#
# (a) `kubectl scale deploy/sleepers --replicas=N`: the time from the scale
#     to N pods Running (the whole chain: Deployment → ReplicaSet → pods →
#     scheduler → agent → containers), ROUNDS times, scaled back to 0 and
#     waited for between rounds.
# (b) CPU time of the server process (the polls of the count included) (API server, controllers, scheduler
#     and agent together: one process) per pod made, over those rounds, and
#     the control plane's share of it on a server without an agent
#     (`--disable-agent`, pods bound to a Node object no agent backs).
#
# k3s cannot run here; Kubernetes' pod startup SLO (p99 ≤ 5 s per pod,
# images present) is the anchor.
# Usage: bench/scale.sh [N=100] [ROUNDS=3]
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
N="${1:-100}"
ROUNDS="${2:-3}"
NODE=bench-node
build_release
netns_up
cd "$WORK"
busybox_image "$WORK/busybox.tar" >/dev/null
KUBECTL="${KUBECTL:-/usr/bin/kubectl}"

kc() { in_net "$KUBECTL" --kubeconfig "$D/kubeconfig.yaml" --cache-dir "$D/kc" "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$SKIFF_PID/stat"; }
now_ms() { date +%s%3N; }
running() { kc get pods -l app=sleepers --field-selector=status.phase=Running -o name 2>/dev/null | wc -l; }
total() { kc get pods -l app=sleepers -o name 2>/dev/null | wc -l; }
deployment() {
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleepers}
spec:
  replicas: 0
  selector: {matchLabels: {app: sleepers}}
  template:
    metadata: {labels: {app: sleepers}}
    spec:
      terminationGracePeriodSeconds: 0
      automountServiceAccountToken: false
      containers:
      - {name: main, image: "busybox:latest", imagePullPolicy: Never, command: [sleep, "3600"]}
YAML
}
HZ=$(getconf CLK_TCK)

echo "== (a) kubectl scale to $N on one real node, $ROUNDS rounds"
D="$WORK/real"
start_node "$D"
in_net "$SKIFF" --root "$D" --run-dir "$D/run" load -i "$WORK/busybox.tar" >/dev/null
trap 'kill_started; killall_node "$D"; cleanup' EXIT INT TERM
for _ in $(seq 1 100); do kc get node "$NODE" >/dev/null 2>&1 && break; sleep 0.1; done
deployment | kc apply -f - >/dev/null
cpu=0
for r in $(seq 1 "$ROUNDS"); do
    t0=$(ticks); s=$(now_ms)
    kc scale deploy/sleepers --replicas="$N" >/dev/null
    until [ "$(running)" -ge "$N" ]; do sleep 0.2; done
    e=$(now_ms); t1=$(ticks)
    cpu=$((cpu + t1 - t0))
    echo "round $r: $N Running in $((e - s)) ms; server CPU $(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$N" 'BEGIN {printf "%.2f s, %.1f ms per pod", t/hz, t/hz*1000/n}')"
    kc scale deploy/sleepers --replicas=0 >/dev/null
    until [ "$(total)" -eq 0 ]; do sleep 0.2; done
done
echo "server+agent CPU per pod made (scale up only): $(awk -v t="$cpu" -v hz="$HZ" -v n=$((N * ROUNDS)) 'BEGIN {printf "%.1f ms", t/hz*1000/n}')"
# The server first: its agent would restart what killall stops.
kill -TERM "$SKIFF_PID"; wait "$SKIFF_PID" 2>/dev/null || true
killall_node "$D"

echo "== (b) control plane alone: the same Deployment scaled to 1000 on a Node no agent backs"
D="$WORK/alone"
start_node "$D" --disable-agent
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $NODE}
YAML
kc patch node "$NODE" --subresource=status --type=merge -p '{"status":{"allocatable":{"cpu":"64","memory":"256Gi","pods":"2000"},"capacity":{"cpu":"64","memory":"256Gi","pods":"2000"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}' >/dev/null
deployment | kc apply -f - >/dev/null
bound() { kc get pods -l app=sleepers --field-selector="spec.nodeName=$NODE" -o name 2>/dev/null | wc -l; }
t0=$(ticks); s=$(now_ms)
kc scale deploy/sleepers --replicas=1000 >/dev/null
until [ "$(bound)" -ge 1000 ]; do sleep 1; done
e=$(now_ms); t1=$(ticks)
echo "1000 pods made and bound in $((e - s)) ms; server CPU $(awk -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN {printf "%.2f s, %.2f ms per pod", t/hz, t/hz}')"
