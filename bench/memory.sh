#!/usr/bin/env bash
# (b) Idle memory of the server: VmRSS (/proc/PID/status) and PSS
# (/proc/PID/smaps_rollup) after startup plus IDLE seconds (default 5), fresh
# data dir. etcd alongside as the nearest peer store, when installed.
# Usage: bench/memory.sh [IDLE_SECS]
source "$(dirname "$0")/lib.sh"
IDLE="${1:-5}"
build_release
netns_up
d="$WORK/skiff"; mkdir -p "$d"
echo "skiff server idle ${IDLE}s: $(in_ns "$APIBENCH" startup --url "https://127.0.0.1:$PORT/readyz" --idle-secs "$IDLE" -- \
    "$SKIFF" server --data-dir "$d" --bind-address 127.0.0.1 --https-listen-port "$PORT" --write-kubeconfig "$d/kubeconfig.yaml" | tr '\n' ' ')"
if have_etcd; then
    # shellcheck disable=SC2046
    echo "etcd idle ${IDLE}s: $(in_ns "$APIBENCH" startup --url "http://127.0.0.1:2379/health" --idle-secs "$IDLE" -- $(etcd_cmd "$WORK/etcd") | tr '\n' ' ')"
fi
