#!/usr/bin/env bash
# The cluster across nodes (issue 17), on one machine: a server and one
# agent, each in a network namespace of its own, joined by veths to a test
# switch (a bridge in a third namespace), as tests/support/cluster.rs does.
#
# (a) Join: time from `skiff agent` start to its Node Ready (the API polled
#     every 20 ms with curl), on a fresh data dir (keys made, CA fetched and
#     checked, certificates signed) and on a restart of the same data dir.
# (b) Throughput across nodes: one TCP stream of busybox `dd | nc`, pod on
#     the server's node → pod on the agent's node, over host-gw and over
#     VXLAN, beside node → node on the same link with the same tools in
#     the same run (the peer figure every pod network is judged against).
#
# k3s is not installed here: no peer run of its agents (its published
# join times are quoted in BENCHMARKS.md).
# Usage: bench/cluster.sh [JOIN_RUNS] [MIB_PER_STREAM]   (10, 2048)
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
RUNS="${1:-10}"
MIB="${2:-2048}"
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
start_agent() { # data dir, node name, backend; sets AGENT_PID
    mkdir -p "$1"
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$1" --run-dir "$1/run" agent \
        --server "https://$SERVER_IP:$PORT" --token-file "$WORK/s/server/token" --node-name "$2" \
        --pod-log-dir "$1/pod-logs" --pod-network "$3" >>"$1.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}
stop_agent() { kill -TERM "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; }
ms_now() { date +%s%3N; }
time_to_ready() { # data dir, node name, backend → ms
    local t0 t1
    t0=$(ms_now)
    start_agent "$1" "$2" "$3"
    for _ in $(seq 1 1500); do
        # Until the Node exists a fast 404; after, its Ready condition.
        if [ "$(node_ready "$2")" = yes ]; then break; fi
        sleep 0.02
    done
    t1=$(ms_now)
    echo $((t1 - t0))
}

# (a) join times.
start_server vxlan
fresh=(); restart=()
for i in $(seq 1 "$RUNS"); do
    d="$WORK/a$i"
    fresh+=("$(time_to_ready "$d" "a$i" vxlan)")
    stop_agent
    restart+=("$(time_to_ready "$d" "a$i" vxlan)")
    stop_agent
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$d" --run-dir "$d/run" killall >/dev/null 2>&1 || true
done
echo "skiff agent start → node Ready, fresh data dir (join): runs=$RUNS median_ms=$(printf '%s\n' "${fresh[@]}" | median) all=[${fresh[*]}]"
echo "skiff agent start → node Ready, restart (joined):     runs=$RUNS median_ms=$(printf '%s\n' "${restart[@]}" | median) all=[${restart[*]}]"
kill_started; PIDS=()
nsenter --net="/run/netns/$SV" "$SKIFF" --root "$WORK/s" --run-dir "$WORK/s/run" killall >/dev/null 2>&1 || true
rm -rf "$WORK/s" "$WORK"/a*

# (b) throughput: MiB through one TCP connection, busybox dd | nc, timed
# by the sender from /proc/uptime (10 ms steps: a stream takes seconds).
SEND='read a _ < /proc/uptime; busybox dd if=/dev/zero bs=1048576 count=$1 2>/dev/null | busybox nc $2 $3; read b _ < /proc/uptime; echo "$1 $a $b"'
rate() { awk '{ if ($3 > $2) printf "%.0f\n", $1 / ($3 - $2); else print "nan" }'; }
KUBECTL=(nsenter --net="/run/netns/$SV" kubectl --kubeconfig "$WORK/s/kubeconfig.yaml")
pod() { # name node command
    api -X POST -H 'Content-Type: application/json' "https://127.0.0.1:$PORT/api/v1/namespaces/default/pods" -d "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"$1\"},\"spec\":{\"nodeName\":\"$2\",\"terminationGracePeriodSeconds\":0,\"automountServiceAccountToken\":false,\"containers\":[{\"name\":\"main\",\"image\":\"busybox:latest\",\"imagePullPolicy\":\"Never\",\"command\":[\"sh\",\"-c\",\"$3\"]}]}}" >/dev/null
}
pod_ip() {
    api "https://127.0.0.1:$PORT/api/v1/namespaces/default/pods/$1" | python3 -c 'import json,sys; s=json.load(sys.stdin)["status"]; print(s.get("podIP","") if s.get("phase")=="Running" else "")'
}
for backend in host-gw vxlan; do
    start_server "$backend"
    start_agent "$WORK/a" a "$backend"
    nsenter --net="/run/netns/$AG" "$SKIFF" --root "$WORK/a" --run-dir "$WORK/a/run" load -i "$WORK/busybox.tar" >/dev/null
    for _ in $(seq 1 300); do [ "$(node_ready a)" = yes ] && break; sleep 0.1; done
    pod sink a 'while true; do busybox nc -l -p 5001 >/dev/null; done'
    pod client s 'sleep 100000'
    ip=""
    for _ in $(seq 1 300); do ip="$(pod_ip sink)"; [ -n "$ip" ] && [ -n "$(pod_ip client)" ] && break; sleep 0.1; done
    # The node → node sink: the same tools on the agent's own address.
    nsenter --net="/run/netns/$AG" busybox sh -c 'while true; do busybox nc -l -p 5002 >/dev/null; done' &
    PIDS+=("$!")
    sleep 1
    pods=(); nodes=()
    for round in 1 2 3; do
        pods+=("$("${KUBECTL[@]}" exec client -- sh -c "$SEND" sh "$MIB" "$ip" 5001 | rate)")
        nodes+=("$(nsenter --net="/run/netns/$SV" busybox sh -c "$SEND" sh "$MIB" "$AGENT_IP" 5002 | rate)")
    done
    pm=$(printf '%s\n' "${pods[@]}" | median); nm=$(printf '%s\n' "${nodes[@]}" | median)
    echo "throughput $backend: pod→pod across nodes MiB/s median=$pm all=[${pods[*]}]; node→node MiB/s median=$nm all=[${nodes[*]}]; ratio=$(python3 -c "print('%.2f' % ($pm/$nm))")"
    kill_started; PIDS=()
    for d in "$WORK/a" "$WORK/s"; do
        nsenter --net="/run/netns/$SV" "$SKIFF" --root "$d" --run-dir "$d/run" killall >/dev/null 2>&1 || true
    done
    rm -rf "$WORK/s" "$WORK/a"
done
