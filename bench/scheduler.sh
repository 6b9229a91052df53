#!/usr/bin/env bash
# Scheduler throughput: pods bound per second for 1,000 and 10,000 pods over
# 100 and 1,000 simulated nodes (Node objects that no agent backs:
# `--disable-agent`, their status written by the tool). Each pod requests
# 100m cpu and 128 MiB. Two ways, each on a fresh server:
#   streaming: 16 HTTPS clients create the pods while the scheduler runs (as
#     kube-scheduler's scheduler_perf does), from the first create to the
#     last binding: bounded by how fast pods can be created;
#   pending:   the pods are all created (and found unschedulable) while the
#     nodes are cordoned, then the nodes are uncordoned: from the first
#     uncordon to the last binding, the scheduler's own pace.
# Both include the bindings and the Scheduled events as API writes.
# Usage: bench/scheduler.sh [CASES]   (default "100:1000 1000:1000 100:10000 1000:10000", NODES:PODS)
source "$(dirname "$0")/lib.sh"
CASES="${1:-100:1000 1000:1000 100:10000 1000:10000}"
build_release
netns_up
for case in $CASES; do
    nodes="${case%%:*}"; pods="${case##*:}"
    for mode in streaming pending; do
        d="$WORK/skiff-$nodes-$pods-$mode"; mkdir -p "$d"
        start_skiff "$d" --disable-agent
        ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
        extra=(); [ "$mode" = pending ] && extra=(--pending 1)
        echo "skiff $(in_ns "$APIBENCH" schedule --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$token" --nodes "$nodes" --pods "$pods" --clients 16 "${extra[@]}") cpu_secs=$(awk '{print ($14+$15)/100}' "/proc/$SKIFF_PID/stat") rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$SKIFF_PID/status")"
        stop_skiff
    done
done
