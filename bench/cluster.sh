#!/usr/bin/env bash
# The cluster across nodes (issue 17), on one machine: a server and one
# agent, each in a network namespace of its own, joined by veths to a test
# switch (a bridge in a third namespace), as tests/support/cluster.rs does.
#
# (a) Join: time from `skiff agent` start to its Node Ready (the API polled
#     every 20 ms with curl), on a fresh data dir (keys made, CA fetched and
#     checked, certificates signed) and on a restart of the same data dir.
# (b) Throughput across nodes: one TCP stream of iperf3, pod on the
#     server's node → pod on the agent's node, over host-gw and over VXLAN,
#     beside node → node on the same link with the same tool in the same
#     run (the peer figure every pod network is judged against).
#
# k3s is not installed here: no peer run of its agents (its published
# join times are quoted in BENCHMARKS.md).
# Needs iperf3 (apt-get install iperf3).
# Usage: bench/cluster.sh [JOIN_RUNS]   (10)
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
RUNS="${1:-10}"
build_release
netns_up
SW="$NS"
AG="skiff-bench-a-$$"
SV="skiff-bench-s-$$"
trap 'kill_started; for d in "$WORK"/s "$WORK"/a*; do [ -d "$d" ] && nsenter --net=/run/netns/$SV "$SKIFF" --root "$d" --run-dir "$d/run" killall >/dev/null 2>&1; done; ip netns del "$AG" 2>/dev/null; ip netns del "$SV" 2>/dev/null; cleanup' EXIT INT TERM
ip -n "$SW" link add br0 type bridge && ip -n "$SW" link set br0 up
n=1
for ns in "$SV" "$AG"; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "p$n" netns "$SW"
    ip -n "$SW" link set "p$n" master br0; ip -n "$SW" link set "p$n" up
    ip -n "$ns" addr add "192.168.85.$n/24" dev eth0; ip -n "$ns" link set eth0 up
    n=$((n + 1))
done
SERVER_IP=192.168.85.1
AGENT_IP=192.168.85.2
(cd "$WORK" && busybox_image "$WORK/busybox.tar" >/dev/null)

start_server() { # pod network backend
    local d="$WORK/s"
    mkdir -p "$d"
    nsenter --net="/run/netns/$SV" "$SKIFF" --root "$d" --run-dir "$d/run" server \
        --advertise-address "$SERVER_IP" --node-name s --pod-log-dir "$d/pod-logs" \
        --write-kubeconfig "$d/kubeconfig.yaml" --pod-network "$1" >"$d.log" 2>&1 &
    SKIFF_PID=$!
    PIDS+=("$SKIFF_PID")
    for _ in $(seq 1 600); do
        [ "$(nsenter --net=/run/netns/$SV curl -sk --max-time 1 "https://127.0.0.1:$PORT/readyz" 2>/dev/null)" = ok ] && break
        sleep 0.1
    done
    nsenter --net="/run/netns/$SV" "$SKIFF" --root "$d" --run-dir "$d/run" load -i "$WORK/busybox.tar" >/dev/null
    TOKEN="$(head -n1 "$d/server/cred/tokens.csv" | cut -d, -f1)"
}
api() { nsenter --net="/run/netns/$SV" curl -sk --max-time 5 -H "Authorization: Bearer $TOKEN" "$@"; }
node_ready() { # name
    api "https://127.0.0.1:$PORT/api/v1/nodes/$1" 2>/dev/null \
        | python3 -c 'import json,sys
try:
    n=json.load(sys.stdin); c=[x for x in n["status"]["conditions"] if x["type"]=="Ready"]
    print("yes" if c and c[0]["status"]=="True" else "no")
except Exception: print("no")'
}
start_agent() { # data dir, node name; sets AGENT_PID (the pod network is the server's)
    mkdir -p "$1"
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$1" --run-dir "$1/run" agent \
        --server "https://$SERVER_IP:$PORT" --token-file "$WORK/s/server/token" --node-name "$2" \
        --pod-log-dir "$1/pod-logs" >>"$1.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}
stop_agent() { kill -TERM "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; }
ms_now() { date +%s%3N; }
time_to_ready() { # data dir, node name → $ELAPSED (ms; not in a subshell: it starts the agent)
    local t0 t1
    t0=$(ms_now)
    start_agent "$1" "$2"
    for _ in $(seq 1 1500); do
        # Until the Node exists a fast 404; after, its Ready condition.
        if [ "$(node_ready "$2")" = yes ]; then break; fi
        sleep 0.02
    done
    t1=$(ms_now)
    ELAPSED=$((t1 - t0))
}

# (a) join times.
start_server vxlan
fresh=(); restart=()
for i in $(seq 1 "$RUNS"); do
    d="$WORK/a$i"
    time_to_ready "$d" "a$i"; fresh+=("$ELAPSED")
    stop_agent
    time_to_ready "$d" "a$i"; restart+=("$ELAPSED")
    stop_agent
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$d" --run-dir "$d/run" killall >/dev/null 2>&1 || true
done
echo "skiff agent start → node Ready, fresh data dir (join): runs=$RUNS median_ms=$(printf '%s\n' "${fresh[@]}" | median) all=[${fresh[*]}]"
echo "skiff agent start → node Ready, restart (joined):     runs=$RUNS median_ms=$(printf '%s\n' "${restart[@]}" | median) all=[${restart[*]}]"
kill_started; PIDS=()
nsenter --net="/run/netns/$SV" "$SKIFF" --root "$WORK/s" --run-dir "$WORK/s/run" killall >/dev/null 2>&1 || true
rm -rf "$WORK/s" "$WORK"/a*

# (b) throughput: one TCP stream of iperf3 (5 s) from a pod's network
# namespace on the server's node to a pod's on the agent's, and from node
# to node, the same binary (the host's: busybox has none) in both. The
# pods' namespaces are entered through the handles the engine pins
# (<run>/netns/<sandbox>): the path is the pods' own — their veths, the
# bridges, the routes or the VXLAN device between the nodes.
command -v iperf3 >/dev/null || { echo "bench: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
pod() { # name node
    api -X POST -H 'Content-Type: application/json' "https://127.0.0.1:$PORT/api/v1/namespaces/default/pods" -d "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"$1\"},\"spec\":{\"nodeName\":\"$2\",\"terminationGracePeriodSeconds\":0,\"automountServiceAccountToken\":false,\"containers\":[{\"name\":\"main\",\"image\":\"busybox:latest\",\"imagePullPolicy\":\"Never\",\"command\":[\"sleep\",\"100000\"]}]}}" >/dev/null
}
pod_ip() {
    api "https://127.0.0.1:$PORT/api/v1/namespaces/default/pods/$1" | python3 -c 'import json,sys; s=json.load(sys.stdin)["status"]; print(s.get("podIP","") if s.get("phase")=="Running" else "")'
}
one_netns() { # run dir → the one pod network namespace pinned there
    local all=("$1"/netns/*)
    [ "${#all[@]}" = 1 ] && [ -e "${all[0]}" ] || { echo "bench: expected one pod namespace in $1/netns: ${all[*]}" >&2; exit 1; }
    echo "${all[0]}"
}
mbps() { python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'; }
for backend in host-gw vxlan; do
    start_server "$backend"
    start_agent "$WORK/a" a
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$WORK/a" --run-dir "$WORK/a/run" load -i "$WORK/busybox.tar" >/dev/null
    for _ in $(seq 1 300); do [ "$(node_ready a)" = yes ] && break; sleep 0.1; done
    pod sink a
    pod client s
    ip=""
    for _ in $(seq 1 300); do ip="$(pod_ip sink)"; [ -n "$ip" ] && [ -n "$(pod_ip client)" ] && break; sleep 0.1; done
    sink_ns="$(one_netns "$WORK/a/run")"; client_ns="$(one_netns "$WORK/s/run")"
    nsenter --net="$sink_ns" iperf3 -s -p 5201 >/dev/null 2>&1 &
    PIDS+=("$!")
    nsenter --net="/run/netns/$AG" iperf3 -s -p 5202 >/dev/null 2>&1 &
    PIDS+=("$!")
    sleep 1
    pods=(); nodes=()
    for round in 1 2 3; do
        pods+=("$(nsenter --net="$client_ns" iperf3 -c "$ip" -p 5201 -t 5 -J | mbps)")
        nodes+=("$(nsenter --net="/run/netns/$SV" iperf3 -c "$AGENT_IP" -p 5202 -t 5 -J | mbps)")
    done
    pm=$(printf '%s\n' "${pods[@]}" | median); nm=$(printf '%s\n' "${nodes[@]}" | median)
    # (Not /sys: nsenter --net leaves the host's sysfs mounted.)
    mtu=$(nsenter --net="$client_ns" ip -o link show eth0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    echo "throughput $backend (pod MTU $mtu): pod→pod across nodes Mbit/s median=$pm all=[${pods[*]}]; node→node Mbit/s median=$nm all=[${nodes[*]}]; ratio=$(python3 -c "print('%.2f' % ($pm/$nm))")"
    kill_started; PIDS=()
    for d in "$WORK/a" "$WORK/s"; do
        nsenter --net="/run/netns/$SV" "$SKIFF" --root "$d" --run-dir "$d/run" killall >/dev/null 2>&1 || true
    done
    rm -rf "$WORK/s" "$WORK/a"
done
