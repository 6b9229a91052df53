#!/usr/bin/env bash
# What secrets encryption at rest costs (issue 16): durable creates of
# Secrets and of ConfigMaps (the same 256 stored payload bytes) at 1, 16
# and 64 clients, alternating, two rounds, first on a server without
# encryption, then on one started with --secrets-encryption (aescbc, as
# k3s's default), where every Secret is sealed before it is stored and
# ConfigMaps are not. The Secret/ConfigMap ratio of the two servers, side
# by side, is what encryption adds to a write.
# Usage: bench/encryption.sh [REQUESTS_PER_LEVEL]  (12800; a quarter with one client)
source "$(dirname "$0")/lib.sh"
REQ="${1:-12800}"
build_release
netns_up
for mode in plain encrypted; do
    d="$WORK/skiff-$mode"; mkdir -p "$d"
    flags=()
    [ "$mode" = encrypted ] && flags=(--secrets-encryption)
    start_skiff "$d" "${flags[@]}"
    ca="$(skiff_ca "$d")"; tok="$(skiff_token "$d")"
    for kind in configmap secret; do
        in_ns "$APIBENCH" create --kind "$kind" --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients 4 --requests 400 --namespace "warm-$kind" >/dev/null
    done
    for c in 1 16 64; do
        n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
        for round in 1 2; do
            for kind in configmap secret; do
                echo "skiff $mode $kind round=$round $(in_ns "$APIBENCH" create --kind "$kind" --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients "$c" --requests "$n" --namespace "$kind-$c-$round")"
            done
        done
    done
    stop_skiff
done
