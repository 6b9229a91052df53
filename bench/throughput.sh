#!/usr/bin/env bash
# (c) API write throughput: ConfigMap creates/s with 1, 16 and 64 concurrent
# HTTPS clients (one connection each, admin bearer token, CA-verified TLS),
# p50/p99 latency. Every create is acknowledged only once durable. etcd puts
# of the same payload through its v3 JSON gateway as the nearest peer store.
# Usage: bench/throughput.sh [REQUESTS_PER_LEVEL]   (default 12800)
source "$(dirname "$0")/lib.sh"
REQ="${1:-12800}"
build_release
netns_up
d="$WORK/skiff"; mkdir -p "$d"
start_skiff "$d"
ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
for c in 1 16 64; do
    n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
    echo "skiff $(in_ns "$APIBENCH" create --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --clients "$c" --requests "$n" --namespace "bench-$c")"
done
echo "skiff rss_kib_after_load=$(awk '/VmRSS/ {print $2}' "/proc/$SKIFF_PID/status")"
stop_skiff
if have_etcd; then
    # shellcheck disable=SC2046
    ip netns exec "$NS" $(etcd_cmd "$WORK/etcd") >"$WORK/etcd.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 300); do in_ns curl -s --max-time 1 http://127.0.0.1:2379/health 2>/dev/null | grep -q true && break; sleep 0.1; done
    for c in 1 16 64; do
        n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
        echo "etcd $(in_ns "$APIBENCH" etcd-put --url http://127.0.0.1:2379 --clients "$c" --requests "$n")"
    done
fi
