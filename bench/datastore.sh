#!/usr/bin/env bash
# Issue 19: the API's durable writes on each backend. ConfigMap creates/s
# and p50/p99 with 1, 16 and 64 HTTPS clients, on SQLite (the default) and
# on PostgreSQL (--datastore-endpoint, over a unix socket), beside
# PostgreSQL's own rate for the nearest raw work in the same run: pgbench
# inserting one ~700-byte row per transaction (synchronous commit, fsync
# on: what a durable create costs the database at least).
#
# PostgreSQL comes from Debian's postgresql package: a server of this
# script's own, initdb into its work directory, default durability
# settings, nothing on the network.
#
# Usage: bench/datastore.sh [REQUESTS_PER_LEVEL]   (default 6400)
source "$(dirname "$0")/lib.sh"
REQ="${1:-6400}"
build_release
netns_up
start_postgres
psql_ -d postgres -c 'CREATE DATABASE skiff' -c 'CREATE DATABASE raw'

run_creates() { # label, then extra server flags
    local label="$1"; shift
    local d="$WORK/$label"; mkdir -p "$d"
    start_skiff "$d" --disable-agent "$@"
    local ca token c n
    ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
    for c in 1 16 64; do
        n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
        echo "$label $(in_ns "$APIBENCH" create --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --clients "$c" --requests "$n" --namespace "bench-$c")"
    done
    echo "$label rss_kib_after_load=$(awk '/VmRSS/ {print $2}' "/proc/$SKIFF_PID/status")"
    stop_skiff
}

run_creates sqlite
run_creates postgresql --datastore-endpoint "$(pg_endpoint skiff)"

psql_ -d raw -c 'CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v BYTEA NOT NULL)'
echo "INSERT INTO t (v) VALUES (convert_to(repeat('x', 700), 'UTF8'));" >"$WORK/insert.sql"
for c in 1 16 64; do
    n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
    j=$((c < 2 ? c : 2))
    tps="$("$PGBIN/pgbench" -h "$PG" -U postgres -n -f "$WORK/insert.sql" -c "$c" -j "$j" -t $((n / c)) raw 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')"
    lat="$("$PGBIN/pgbench" -h "$PG" -U postgres -n -f "$WORK/insert.sql" -c "$c" -j "$j" -t $((n / c / 4 + 1)) raw 2>/dev/null |
        sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')"
    echo "pgbench-insert clients=$c tps=$tps latency_avg_ms=$lat"
done
stop_postgres
