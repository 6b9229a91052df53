#!/usr/bin/env bash
# Issue 15 figures: Services in the kernel and the cluster DNS, on a one-node
# cluster (server with its in-process agent) in a network namespace of its
# own. Run as root.
#
# (a) Client pod -> ClusterIP -> server pod against client pod -> server
#     pod's IP, alternated R times in one run (default 5): TCP throughput
#     (examples/tcpbench, 2 GiB per transfer, measured by the receiver) and
#     connection round trips (connect, one byte each way, close; p50/p99 over
#     N rounds, default 2000). tcpbench is bind-mounted into busybox pods.
# (b) Rule update: the agent's time for one changed Service (its debug log,
#     "service rules updated took_us=… cpu_us=… sys_us=…": wall time until
#     the kernel acknowledged, and the CPU time of the threads that did the
#     work, with its share in the kernel (nf_tables checks the whole table
#     on each transaction);
#     median of C changes, default 20) and the nf_tables messages sent, for one endpoint replaced in a Service
#     of 10 and of 1,000 endpoints, and one Service added among 10 and among
#     1,000 Services (Services without selectors, EndpointSlices written by
#     kubectl). Independent of the total means O(changed).
# (c) DNS queries per second from the client pod's network namespace
#     (dnsperf, 10 s, its default 100 outstanding queries) for a cluster
#     name and for an external name the DNS has cached (an upstream dnsmasq
#     in a namespace of this script). The peer is CoreDNS's own published
#     figure (coredns/deployment, kubernetes/Scaling_CoreDNS.md: one
#     instance on a 2-vCPU GCE n1-standard-2, both vCPUs pegged: 33,669 QPS
#     for internal names; for external names 6,733 client QPS through the
#     ClusterFirst search list, i.e. 33,667 QPS at the server, the figure
#     comparable to this one-query-per-name run). CoreDNS is not run here (it
#     would be a pod image from a registry this box does not reach).
#
# Usage: bench/services.sh [R=5] [N=2000] [C=20]
source "$(dirname "$0")/lib.sh"
source "$BENCH_DIR/busybox-image.sh"
R="${1:-5}"
N="${2:-2000}"
C="${3:-20}"
NODE=bench-node
need=()
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
build_release
# TCPBENCH=path uses another build of the tool.
if [ -z "${TCPBENCH:-}" ]; then
    TCPBENCH="$RELEASE_DIR/examples/tcpbench"
    [ -n "${BENCH_NO_BUILD:-}" ] || (cd "$REPO_DIR" && cargo build --release -q --example tcpbench)
fi
netns_up
cd "$WORK"
busybox_image "$WORK/busybox.tar" >/dev/null
# An upstream resolver for the external name, in a namespace of its own
# joined to the node's by a veth.
UP="skiff-bench-up-$$"
ip netns add "$UP"
ip -n "$NS" link add eth0 type veth peer name eth0 netns "$UP"
ip -n "$NS" addr add 192.168.78.1/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$UP" addr add 192.168.78.2/24 dev eth0
ip -n "$UP" link set eth0 up
ip -n "$UP" link set lo up
echo "nameserver 192.168.78.2" >"$WORK/resolv.conf"
nsenter --net="/run/netns/$UP" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
    --bind-interfaces --listen-address=192.168.78.2 --except-interface=lo \
    --address=/outside.test/192.0.2.99 --pid-file="$WORK/dnsmasq.pid" --user=root &
PIDS+=("$!")

d="$WORK/skiff"
trap 'kill_started; killall_node "$d"; ip netns delete "$UP" 2>/dev/null; cleanup' EXIT INT TERM
RUST_LOG="info,skiff::agent::proxy=debug" start_node "$d" --resolv-conf "$WORK/resolv.conf"
in_net "$SKIFF" --root "$d" --run-dir "$d/run" load -i "$WORK/busybox.tar" >/dev/null
k() { in_net kubectl --kubeconfig "$d/kubeconfig.yaml" --cache-dir "$WORK/kcache" "$@"; }
until k get node "$NODE" >/dev/null 2>&1; do sleep 0.2; done

pod() { # name command...
    local name="$1"; shift
    local args; args=$(printf '"%s",' "$@"); args="[${args%,}]"
    k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {app: $name}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{name: tb, hostPath: {path: $TCPBENCH, type: File}}]
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: $args
    volumeMounts: [{name: tb, mountPath: /tcpbench, readOnly: true}]
EOF
}
pod server sh -c '/tcpbench echo 5002 & while true; do /tcpbench serve 5001; done'
pod client sleep 100000
k expose pod server --name server --port 5001 >/dev/null
k create service clusterip server-rr --tcp=5002:5002 >/dev/null
k patch service server-rr -p '{"spec":{"selector":{"app":"server"}}}' >/dev/null
k wait --for=condition=Ready pod/server pod/client --timeout=120s >/dev/null
SIP=$(k get pod server -o jsonpath='{.status.podIP}')
CIP=$(k get service server -o jsonpath='{.spec.clusterIP}')
RRIP=$(k get service server-rr -o jsonpath='{.spec.clusterIP}')
cex() { k exec client -- "$@"; }
# Wait for the Services' rules.
until cex /tcpbench rr "$RRIP:5002" 1 >/dev/null 2>&1; do sleep 0.2; done
until cex sh -c "/tcpbench send $CIP:5001 1" >/dev/null 2>&1; do sleep 0.2; done

echo "== (a) client pod -> server pod: direct vs ClusterIP (R=$R)"
last_rate() { k logs server | tail -n1 | awk '{print $3}'; }
for i in $(seq 1 "$R"); do
    cex /tcpbench send "$SIP:5001" 2048; sleep 0.3; direct=$(last_rate)
    cex /tcpbench send "$CIP:5001" 2048; sleep 0.3; svc=$(last_rate)
    rr_direct=$(cex /tcpbench rr "$SIP:5002" "$N")
    rr_svc=$(cex /tcpbench rr "$RRIP:5002" "$N")
    echo "round $i: throughput_gbit direct=$direct clusterip=$svc  rr_p50_p99_us direct=[$rr_direct] clusterip=[$rr_svc]"
done

echo "== (b) rule update for one change (C=$C)"
took() { # the last update's took_us and messages after log line $1
    local from="$1" line
    for _ in $(seq 1 200); do
        line=$(tail -n +"$from" "$d.log" | grep "service rules updated" | tail -n1 || true)
        [ -n "$line" ] && break
        sleep 0.05
    done
    echo "$line" | sed -E 's/.*messages=([0-9]+).*took_us=([0-9]+).*cpu_us=([0-9]+).*sys_us=([0-9]+).*/\2 \1 \3 \4/'
}
slice() { # name service n first-octet
    local eps="" i
    for i in $(seq 1 "$3"); do
        eps="$eps{addresses: [10.99.$((i / 250)).$((i % 250 + 1))]},"
    done
    printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints: [%s]\n' \
        "$1" "$2" "${eps%,}"
}
for size in 10 1000; do
    { printf 'apiVersion: v1\nkind: Service\nmetadata: {name: big-%s}\nspec: {ports: [{port: 80}]}\n---\n' "$size"
      slice "big-$size" "big-$size" "$size"; } | k apply -f - >/dev/null
    sleep 1
    times=(); msgs=(); cpus=(); syss=()
    for j in $(seq 1 "$C"); do
        from=$(($(wc -l <"$d.log") + 1))
        # One endpoint replaced: the first address moved to another.
        k patch endpointslice "big-$size" --type=json \
            -p "[{\"op\":\"replace\",\"path\":\"/endpoints/0/addresses/0\",\"value\":\"10.98.0.$((j % 250 + 1))\"}]" >/dev/null
        read -r t m c y < <(took "$from")
        times+=("$t"); msgs+=("$m"); cpus+=("$c"); syss+=("$y")
    done
    echo "one endpoint replaced among $size: took_us median $(printf '%s\n' "${times[@]}" | median) cpu_us median $(printf '%s\n' "${cpus[@]}" | median) (in the kernel $(printf '%s\n' "${syss[@]}" | median)) messages median $(printf '%s\n' "${msgs[@]}" | median)"
done
for total in 10 1000; do
    k create namespace "many-$total" >/dev/null
    {
        for i in $(seq 1 "$total"); do
            printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: many-%d}\nspec: {ports: [{port: 80}]}\n' "$i" "$total"
            printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s%d, namespace: many-%d, labels: {kubernetes.io/service-name: s%d}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.97.%d.%d]}]\n' "$i" "$total" "$i" $((i / 250)) $((i % 250 + 1))
        done
    } | k apply -f - >/dev/null
    sleep 2
    times=(); msgs=(); cpus=(); syss=()
    for j in $(seq 1 "$C"); do
        from=$(($(wc -l <"$d.log") + 1))
        k -n "many-$total" patch endpointslice "s$((j % total + 1))" --type=json \
            -p "[{\"op\":\"replace\",\"path\":\"/endpoints/0/addresses/0\",\"value\":\"10.96.0.$((j % 250 + 1))\"}]" >/dev/null
        read -r t m c y < <(took "$from")
        times+=("$t"); msgs+=("$m"); cpus+=("$c"); syss+=("$y")
    done
    echo "one Service's endpoint replaced among $total Services: took_us median $(printf '%s\n' "${times[@]}" | median) cpu_us median $(printf '%s\n' "${cpus[@]}" | median) (in the kernel $(printf '%s\n' "${syss[@]}" | median)) messages median $(printf '%s\n' "${msgs[@]}" | median)"
done
cpu_before=$(awk '{print ($14+$15)}' "/proc/$SKIFF_PID/stat")

echo "== (c) DNS queries per second from the client pod"
CNS=$(ls "$d/run/netns" | grep "k8s_client_default" | head -n1)
printf 'server.default.svc.cluster.local A\n' >"$WORK/q-cluster"
printf 'outside.test A\n' >"$WORK/q-external"
for q in cluster external; do
    out=$(nsenter --net="$d/run/netns/$CNS" dnsperf -s 10.43.0.10 -d "$WORK/q-$q" -l 10 2>&1)
    qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
    lost=$(echo "$out" | awk '/Queries lost/ {print $3}')
    lat=$(echo "$out" | awk '/Average Latency/ {print $4}')
    echo "$q names: qps=$qps lost=$lost avg_latency_s=$lat"
done
echo "server+agent cpu_secs total=$(awk '{print ($14+$15)/100}' "/proc/$SKIFF_PID/stat") rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$SKIFF_PID/status") (after rule updates: $(awk -v b="$cpu_before" '{print ($14+$15-b)/100}' "/proc/$SKIFF_PID/stat") s for DNS)"
