#!/usr/bin/env bash
# Issue 19: failover time. Two skiff servers share one PostgreSQL database
# (and a --token); a Deployment runs; the server leading the controllers is
# killed (SIGKILL, as a power cut), and at once the Deployment is scaled
# through the other server: the figure is the time from the kill to the
# new replicas' pods existing (the scale request answered at once; the
# Deployment and ReplicaSet controllers, now led by the other server, make
# the pods). Once with skiff's defaults on a shared datastore (upstream
# kube-controller-manager's leader-election periods, 15/10/2 s: what a
# kube-controller-manager pair fails over in, the peer figure), and once
# with the long periods skiff keeps on the embedded datastore (60/40/15 s,
# for flash: see leader.rs), given as flags.
#
# Usage: bench/failover.sh [RUNS]   (default 3 per setting)
source "$(dirname "$0")/lib.sh"
RUNS="${1:-3}"
build_release
netns_up
start_postgres

# Server $1 (a name) on port $2 with extra flags: data dir $WORK/$1.
start_server() {
    local name="$1" port="$2"; shift 2
    local d="$WORK/$name"; mkdir -p "$d"
    # nsenter, not through a function: $! must be the server itself (a
    # function in the background is a subshell; `ip netns exec` forks).
    nsenter --net="/run/netns/$NS" "$SKIFF" server --data-dir "$d" --bind-address 127.0.0.1 \
        --https-listen-port "$port" --write-kubeconfig "$d/kubeconfig.yaml" \
        --disable-agent --token bench-failover "$@" >"$d.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 600); do
        [ "$(in_ns curl -sk --max-time 1 "https://127.0.0.1:$port/readyz" 2>/dev/null)" = ok ] && break
        sleep 0.1
    done
    [ "$(in_ns curl -sk --max-time 1 "https://127.0.0.1:$port/readyz" 2>/dev/null)" = ok ] ||
        { echo "bench: server $name not ready; log:" >&2; cat "$d.log" >&2; exit 1; }
    eval "PID_$name=$pid"
}
kc() { in_ns kubectl --kubeconfig "$WORK/$1/kubeconfig.yaml" "${@:2}"; }
pods() { kc "$1" get pods -l app=fo -o name 2>/dev/null | wc -l; }
now() { date +%s.%N; }

run() { # label, run number, leader flags...
    local label="$1" n="$2"; shift 2
    local db="fo_${label//-/_}_$n"
    psql_ -d postgres -c "CREATE DATABASE $db"
    rm -rf "$WORK/a" "$WORK/b" "$WORK/a.log" "$WORK/b.log"
    local ep; ep="$(pg_endpoint "$db")"
    start_server a 6443 --datastore-endpoint "$ep" "$@"
    start_server b 7443 --datastore-endpoint "$ep" "$@"
    kc a create deployment fo --image=busybox --replicas=1 >/dev/null
    for _ in $(seq 1 600); do [ "$(pods a)" = 1 ] && break; sleep 0.1; done
    local holder; holder="$(kc a -n kube-system get lease kube-controller-manager -o jsonpath='{.spec.holderIdentity}')"
    # The leader is the server whose data dir its identity hashes; find it
    # by elimination: kill it, scale through the other.
    local lead=a other=b
    grep -q "leading the controllers" "$WORK/b.log" && { lead=b; other=a; }
    local pid_var="PID_$lead"
    local t0 t1
    t0="$(now)"
    kill -9 "${!pid_var}"
    wait "${!pid_var}" 2>/dev/null || true
    kill -0 "${!pid_var}" 2>/dev/null && { echo "bench: the leader did not end" >&2; exit 1; }
    kc "$other" scale deployment fo --replicas=3 >/dev/null
    for _ in $(seq 1 2400); do [ "$(pods "$other")" = 3 ] && break; sleep 0.1; done
    t1="$(now)"
    [ "$(pods "$other")" = 3 ] || { echo "bench: no failover; log:" >&2; cat "$WORK/$other.log" >&2; exit 1; }
    echo "$label run=$n leader_was=$holder failover_s=$(echo "$t1 - $t0" | bc)"
    kill_started_servers
}
kill_started_servers() {
    for v in PID_a PID_b; do
        [ -n "${!v:-}" ] && kill -9 "${!v}" 2>/dev/null && wait "${!v}" 2>/dev/null || true
    done
}

for i in $(seq 1 "$RUNS"); do
    run shared-defaults "$i"
    run flash-periods "$i" --leader-elect-lease-duration 60 \
        --leader-elect-renew-deadline 40 --leader-elect-retry-period 15
done
stop_postgres
