#!/usr/bin/env bash
# (d) Watch delivery latency: one watch on ConfigMaps, EVENTS creates one
# after another on a second connection; delay from each create's response
# (and from its request) to its ADDED event; p50/p99.
# Usage: bench/watch.sh [EVENTS]   (default 1000)
source "$(dirname "$0")/lib.sh"
EVENTS="${1:-1000}"
build_release
netns_up
d="$WORK/skiff"; mkdir -p "$d"
start_skiff "$d"
ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
echo "skiff $(in_ns "$APIBENCH" watch --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --events "$EVENTS")"
stop_skiff
