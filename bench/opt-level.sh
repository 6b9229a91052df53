#!/usr/bin/env bash
# The release profile's opt-level, chosen by measurement: the same code
# built at opt-level 3, "s" (the release profile) and "z" (all with fat
# LTO, one codegen unit, stripped), compared on size, start-up to /readyz
# (fresh data dir, 5 runs), ConfigMap creates and gets over 16 HTTPS
# clients, and the server's RSS after them. Each binary is measured twice,
# interleaved, so that a drift of the machine shows.
#
# Building the three takes ~45 minutes on 2 cores; O3_BIN, S_BIN and Z_BIN
# name binaries built already (S_BIN: the release profile's).
#
# Usage: bench/opt-level.sh
source "$(dirname "$0")/lib.sh"
T="$TARGET_DIR/x86_64-unknown-linux-gnu"
if [ -z "${O3_BIN:-}" ] || [ -z "${S_BIN:-}" ] || [ -z "${Z_BIN:-}" ]; then
    (cd "$REPO_DIR" && for p in release-o3 release release-z; do cargo build -q --profile "$p" --bin skiff; done)
    (cd "$REPO_DIR" && cargo build -q --release --example apibench)
fi
O3_BIN="${O3_BIN:-$T/release-o3/skiff}"
S_BIN="${S_BIN:-$T/release/skiff}"
Z_BIN="${Z_BIN:-$T/release-z/skiff}"
[ -x "$APIBENCH" ] || { echo "bench: missing $APIBENCH" >&2; exit 1; }
netns_up

measure() { # label binary
    local label="$1" bin="$2" st=() d i
    for i in 1 2 3 4 5; do
        d="$WORK/$label-start-$i"; mkdir -p "$d"
        st+=("$(in_ns "$APIBENCH" startup --url "https://127.0.0.1:$PORT/readyz" -- "$bin" server --data-dir "$d" \
            --bind-address 127.0.0.1 --disable-agent --write-kubeconfig "$d/kubeconfig.yaml" | sed -n 's/^ready_ms=//p')")
    done
    d="$WORK/$label-load"; rm -rf "$d"; mkdir -p "$d"
    SKIFF="$bin" start_skiff "$d" --disable-agent
    local ca token create get
    ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
    create=$(in_ns "$APIBENCH" create --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --clients 16 --requests 4000 | sed -n 's/.* rate=\([0-9]*\)\/s.*/\1/p')
    get=$(in_ns "$APIBENCH" get --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --clients 16 --requests 20000 | sed -n 's/.* rate=\([0-9]*\)\/s.*/\1/p')
    echo "$label: $(stat -c %s "$bin") bytes, start-up median $(printf '%s\n' "${st[@]}" | median) ms, creates ${create}/s, gets ${get}/s, RSS $(awk '/^VmRSS/ {print $2}' "/proc/$SKIFF_PID/status") KiB"
    stop_skiff
}

for round in 1 2; do
    measure O3 "$O3_BIN"
    measure s "$S_BIN"
    measure z "$Z_BIN"
done
