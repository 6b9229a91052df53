#!/usr/bin/env bash
# The control plane at scale: a control-plane-only server (release build,
# --disable-agent) and N simulated nodes in one process (`skiff agent
# --simulate N`, hidden flag: kubemark's hollow nodes in spirit — each node
# joins with its own credentials, renews its Lease every 10 s, reports its
# status at kubelet's cadence; its pods are status-only fakes that never
# run a container), in a network namespace of its own.
#
# For each N: the joins, a Deployment of N*PODS_PER_NODE replicas pinned to
# the simulated nodes until every replica is Ready, then STEADY seconds of
# steady state (leases renewing) during which a client issues a mix of GET
# and LIST requests (one keep-alive HTTPS connection, admin token, RATE
# requests/s) and the server's CPU (utime+stime from /proc/PID/stat), RSS
# and PSS (smaps_rollup) are taken; the simulator's own CPU and RSS apart.
#
# k3s is not installed on this machine: no peer run. k3s documents its
# server's sizing as 2 cores / 4 GB for up to 350 agents (docs.k3s.io,
# installation requirements).
# Usage: bench/cluster-scale.sh [N...]   (default: 100 1000)
#   PODS_PER_NODE=30 STEADY=150 RATE=5 SETTLE=20
source "$(dirname "$0")/lib.sh"
if [ "$#" -gt 0 ]; then SIZES=("$@"); else SIZES=(100 1000); fi
PODS_PER_NODE="${PODS_PER_NODE:-30}"
STEADY="${STEADY:-150}"
RATE="${RATE:-5}"
SETTLE="${SETTLE:-20}"
KUBECTL="${KUBECTL:-/usr/bin/kubectl}"
if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${SKIFF_BIN:-}" ]; then
    (cd "$REPO_DIR" && cargo build --release -q)
fi
[ -x "$SKIFF" ] || { echo "bench: missing $SKIFF" >&2; exit 1; }
netns_up
HZ=$(getconf CLK_TCK)

kc() { in_net "$KUBECTL" --kubeconfig "$D/kubeconfig.yaml" --cache-dir "$D/kc" "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
now_ms() { date +%s%3N; }
ready_nodes() { kc get nodes -l skiff.io/simulated=true --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l; }
ready_replicas() { kc get deploy fake -o 'jsonpath={.status.readyReplicas}' 2>/dev/null || true; }
# Bounded wait: $1 seconds for `$2...` to hold, polled every 2 s.
wait_until() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        for p in "$SKIFF_PID" "$SIM_PID"; do
            kill -0 "$p" 2>/dev/null || { echo "bench: process $p exited" >&2; return 1; }
        done
        sleep 2
    done
}
nodes_ready() { [ "$(ready_nodes)" -eq "$N" ]; }
pods_ready() { [ "$(ready_replicas)" = "$((N * PODS_PER_NODE))" ]; }

# GET and LIST requests at RATE/s for $1 seconds; per kind p50/p99 (ms).
apimix() {
    in_net python3 - "$PORT" "$CA" "$TOKEN" "$1" "$RATE" <<'PY'
import http.client, json, ssl, sys, time
port, ca, token, secs, rate = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
hdr = {"Authorization": "Bearer " + token, "Accept": "application/json"}
def get(path):
    t = time.perf_counter()
    conn.request("GET", path, headers=hdr)
    r = conn.getresponse()
    body = r.read()
    dt = (time.perf_counter() - t) * 1000
    if r.status != 200:
        raise SystemExit(f"GET {path}: {r.status} {body[:200]!r}")
    return dt, body
pod = json.loads(get("/api/v1/namespaces/default/pods?limit=1")[1])["items"][0]["metadata"]["name"]
node = json.loads(get("/api/v1/nodes?limit=1&labelSelector=skiff.io/simulated%3Dtrue")[1])["items"][0]["metadata"]["name"]
mix = [
    ("GET", f"/api/v1/namespaces/default/pods/{pod}"),
    ("GET", f"/api/v1/nodes/{node}"),
    ("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"),
    ("LIST", "/api/v1/namespaces/default/pods?limit=500"),
    ("LIST", "/api/v1/nodes"),
    ("LIST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
]
got = {"GET": [], "LIST": []}
start = time.monotonic()
i = 0
while time.monotonic() - start < secs:
    kind, path = mix[i % len(mix)]
    got[kind].append(get(path)[0])
    i += 1
    nxt = start + i / rate
    time.sleep(max(0.0, nxt - time.monotonic()))
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print(" ".join(f"{k}={pct(v,50):.1f}/{pct(v,99):.1f}/{len(v)}" for k, v in got.items()))
PY
}

deployment() {
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: fake}
spec:
  replicas: $1
  selector: {matchLabels: {app: fake}}
  template:
    metadata: {labels: {app: fake}}
    spec:
      nodeSelector: {skiff.io/simulated: "true"}
      automountServiceAccountToken: false
      containers:
      - {name: pause, image: "registry.k8s.io/pause:3.10"}
YAML
}

echo "## cluster-scale: $(nproc) cpus, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%F)"
echo "k3s: not installed on this machine, no peer run (k3s documents 2 cores/4 GB for up to 350 agents)"
echo "steady state ${STEADY}s, ${RATE} req/s GET/LIST mix; PODS_PER_NODE=$PODS_PER_NODE"
echo
echo "| nodes | pods | joined (s) | all Ready (s) | server CPU % | server RSS / PSS (MiB) | simulator CPU % | simulator RSS (MiB) | GET p50/p99 (ms) | LIST p50/p99 (ms) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for N in "${SIZES[@]}"; do
    D="$WORK/server-$N"
    S="$WORK/sim-$N"
    mkdir -p "$D" "$S"
    # Every simulated node holds its own connection, all from 127.0.0.1.
    start_skiff "$D" --disable-agent --max-connections 8000 --max-connections-per-client 6000
    CA="$(skiff_ca "$D")"
    TOKEN="$(skiff_token "$D")"
    t0=$(now_ms)
    # nsenter itself, not the in_net function: $! is then the simulator.
    nsenter --net="/run/netns/$NS" "$SKIFF" --root "$S/root" --run-dir "$S/run" agent --simulate "$N" --node-name bench \
        --server "https://127.0.0.1:$PORT" --token-file "$D/server/token" --data-dir "$S" \
        >"$S.log" 2>&1 &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
    if ! wait_until 1800 nodes_ready; then
        echo "| $N | - | nodes never all Ready ($(ready_nodes)/$N) | | | | | | | |"
        tail -5 "$S.log" >&2
        kill_started; PIDS=(); continue
    fi
    joined=$(( $(now_ms) - t0 ))
    t1=$(now_ms)
    deployment $((N * PODS_PER_NODE)) | kc apply -f - >/dev/null
    if ! wait_until 3600 pods_ready; then
        echo "| $N | $((N * PODS_PER_NODE)) | $((joined / 1000)) | never ($(ready_replicas) Ready) | | | | | | |"
        kill_started; PIDS=(); continue
    fi
    running=$(( $(now_ms) - t1 ))
    sleep "$SETTLE"
    s0=$(ticks "$SKIFF_PID"); m0=$(ticks "$SIM_PID"); w0=$(now_ms)
    mix=$(apimix "$STEADY")
    s1=$(ticks "$SKIFF_PID"); m1=$(ticks "$SIM_PID"); w1=$(now_ms)
    wall=$(( w1 - w0 ))
    cpu() { awk -v t="$1" -v hz="$HZ" -v ms="$wall" 'BEGIN {printf "%.1f", t / hz / (ms / 1000) * 100}'; }
    mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
    get=$(sed -n 's/.*GET=\([^/]*\/[^/]*\).*/\1/p' <<<"$mix")
    list=$(sed -n 's/.*LIST=\([^/]*\/[^/]*\).*/\1/p' <<<"$mix")
    echo "| $N | $((N * PODS_PER_NODE)) | $(awk -v m="$joined" 'BEGIN {printf "%.1f", m/1000}') | $(awk -v m="$running" 'BEGIN {printf "%.1f", m/1000}') | $(cpu $((s1 - s0))) | $(mib "$(kib "$SKIFF_PID" Rss)") / $(mib "$(kib "$SKIFF_PID" Pss)") | $(cpu $((m1 - m0))) | $(mib "$(kib "$SIM_PID" Rss)") | $get | $list |"
    echo "  (N=$N: requests $mix; store $(du -sh "$D/server/db" | cut -f1))" >&2
    kill_started
    PIDS=()
    rm -rf "$D" "$S"
done
