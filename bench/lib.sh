# Shared helpers for bench/*.sh (sourced). Every benchmark runs inside a
# network namespace it creates and removes; traffic stays on 127.0.0.1 there.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$BENCH_DIR")"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
RELEASE_DIR="$TARGET_DIR/x86_64-unknown-linux-gnu/release"
# SKIFF_BIN=path measures another build of skiff (nothing is built then).
SKIFF="${SKIFF_BIN:-$RELEASE_DIR/skiff}"
APIBENCH="${APIBENCH_BIN:-$RELEASE_DIR/examples/apibench}"
PORT=6443

[ "$(id -u)" = 0 ] || { echo "bench: run as root (network namespaces)" >&2; exit 1; }

build_release() {
    if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${SKIFF_BIN:-}" ]; then
        (cd "$REPO_DIR" && cargo build --release -q && cargo build --release -q --example apibench)
    fi
    [ -x "$SKIFF" ] && [ -x "$APIBENCH" ] || { echo "bench: missing $SKIFF or $APIBENCH" >&2; exit 1; }
}

NS=""
WORK=""
PIDS=()
# End the processes this script started. Traps call it before `skiff
# killall`: a server left running would have its agent restart the pods
# killall stops (and leave their shims behind).
kill_started() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
}
cleanup() {
    kill_started
    [ -n "$NS" ] && ip netns delete "$NS" 2>/dev/null || true
    [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

netns_up() {
    NS="skiff-bench-$$"
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    WORK="$(mktemp -d /tmp/skiff-bench.XXXXXX)"
}

in_ns() { ip netns exec "$NS" "$@"; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# Start skiff server in the namespace on data dir $1; waits for /readyz.
start_skiff() {
    local data="$1"
    shift
    ip netns exec "$NS" "$SKIFF" server --data-dir "$data" --bind-address 127.0.0.1 \
        --https-listen-port "$PORT" --write-kubeconfig "$data/kubeconfig.yaml" "$@" \
        >"$data.log" 2>&1 &
    SKIFF_PID=$!
    PIDS+=("$SKIFF_PID")
    wait_ready "$data"
}

# Waits (bounded) for the server of data dir $1 to say /readyz ok.
wait_ready() {
    for _ in $(seq 1 600); do
        if [ "$(in_ns curl -sk --max-time 1 "https://127.0.0.1:$PORT/readyz" 2>/dev/null)" = ok ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: skiff server not ready; log:" >&2
    cat "$1.log" >&2
    exit 1
}

# Enter the namespace with nsenter, not `ip netns exec`: that remounts /sys
# and hides the cgroup filesystems a node's pods need.
in_net() { nsenter --net="/run/netns/$NS" "$@"; }

# A server with its in-process agent as node $NODE: data dir $1, run dir
# $1/run, pod logs $1/pod-logs; the rest are extra server flags. Waits for
# /readyz. nsenter execs the server, so $SKIFF_PID is its PID.
start_node() {
    local d="$1"; shift
    mkdir -p "$d"
    nsenter --net="/run/netns/$NS" "$SKIFF" --root "$d" --run-dir "$d/run" server --data-dir "$d" \
        --bind-address 127.0.0.1 --https-listen-port "$PORT" --node-name "$NODE" \
        --pod-log-dir "$d/pod-logs" --write-kubeconfig "$d/kubeconfig.yaml" "$@" >"$d.log" 2>&1 &
    SKIFF_PID=$!
    PIDS+=("$SKIFF_PID")
    wait_ready "$d"
}

# The containers of the node of data dir $1, stopped. Traps call it after
# kill_started: a live agent would restart them.
killall_node() { in_net "$SKIFF" --root "$1" --run-dir "$1/run" killall >/dev/null 2>&1 || true; }

stop_skiff() {
    kill -TERM "$SKIFF_PID" 2>/dev/null || true
    wait "$SKIFF_PID" 2>/dev/null || true
}

# CA file and admin token of a running server's data dir $1.
skiff_ca() {
    grep certificate-authority-data "$1/kubeconfig.yaml" | awk '{print $2}' | tr -d "'\"" | base64 -d >"$1/ca.pem"
    echo "$1/ca.pem"
}
skiff_token() { head -n1 "$1/server/cred/tokens.csv" | cut -d, -f1; }

have_etcd() { command -v etcd >/dev/null 2>&1; }

etcd_cmd() { # data dir
    echo etcd --name bench --data-dir "$1" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster bench=http://127.0.0.1:2380 --log-level error
}

# A PostgreSQL server of the script's own (Debian's postgresql package):
# initdb into $WORK/pg, default durability settings, a unix socket only.
# Sets PGBIN, PG (its socket directory), PG_PID; psql_ runs psql on it.
start_postgres() {
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -x "$PGBIN/initdb" ] || { echo "bench: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    PG="$WORK/pg"
    # PostgreSQL runs as its own user, which must get through the work dir.
    chmod 0711 "$WORK"
    mkdir -p "$PG"
    chown postgres: "$PG"
    as_pg "$PGBIN/initdb" -D "$PG/data" --auth=trust --username=postgres --locale=C --encoding=UTF8 >/dev/null
    # Not through a function: $! must be postgres itself (setpriv execs
    # it), or killing it would leave the server running.
    setpriv --reuid=postgres --regid=postgres --clear-groups --reset-env \
        "$PGBIN/postgres" -D "$PG/data" -k "$PG" -c listen_addresses= -c max_connections=200 \
        >"$PG/server.log" 2>&1 &
    PG_PID=$!
    PIDS+=("$PG_PID")
    for _ in $(seq 1 300); do [ -S "$PG/.s.PGSQL.5432" ] && break; sleep 0.1; done
    for _ in $(seq 1 100); do psql_ -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
    echo "postgresql: $("$PGBIN/postgres" --version)"
}
as_pg() { setpriv --reuid=postgres --regid=postgres --clear-groups --reset-env "$@"; }
psql_() { "$PGBIN/psql" -h "$PG" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
# The endpoint of database $1 on it, over the unix socket.
pg_endpoint() { echo "postgres://postgres@$(printf %s "$PG" | sed 's|/|%2F|g')/$1"; }
stop_postgres() {
    kill -INT "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
}
