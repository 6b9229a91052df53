#!/usr/bin/env bash
# (a) Time from `skiff server` start to /readyz answering ok, on a fresh data
# dir and on a restart of the same data dir; N runs, median. Also etcd's time
# to /health (fresh and restart) as the nearest peer store, when installed.
# Usage: bench/startup.sh [RUNS]   (default 10)
source "$(dirname "$0")/lib.sh"
RUNS="${1:-10}"
build_release
netns_up

fresh=(); restart=()
for i in $(seq 1 "$RUNS"); do
    d="$WORK/skiff-$i"; mkdir -p "$d"
    args=(server --data-dir "$d" --bind-address 127.0.0.1 --https-listen-port "$PORT" --write-kubeconfig "$d/kubeconfig.yaml")
    fresh+=("$(in_ns "$APIBENCH" startup --url "https://127.0.0.1:$PORT/readyz" -- "$SKIFF" "${args[@]}" | sed -n 's/^ready_ms=//p')")
    restart+=("$(in_ns "$APIBENCH" startup --url "https://127.0.0.1:$PORT/readyz" -- "$SKIFF" "${args[@]}" | sed -n 's/^ready_ms=//p')")
done
echo "skiff startup to /readyz, fresh data dir: runs=$RUNS median_ms=$(printf '%s\n' "${fresh[@]}" | median) all=[${fresh[*]}]"
echo "skiff startup to /readyz, restart:        runs=$RUNS median_ms=$(printf '%s\n' "${restart[@]}" | median) all=[${restart[*]}]"

if have_etcd; then
    fresh=(); restart=()
    for i in $(seq 1 "$RUNS"); do
        d="$WORK/etcd-$i"
        # shellcheck disable=SC2046
        fresh+=("$(in_ns "$APIBENCH" startup --url "http://127.0.0.1:2379/health" -- $(etcd_cmd "$d") | sed -n 's/^ready_ms=//p')")
        # shellcheck disable=SC2046
        restart+=("$(in_ns "$APIBENCH" startup --url "http://127.0.0.1:2379/health" -- $(etcd_cmd "$d") | sed -n 's/^ready_ms=//p')")
    done
    echo "etcd $(etcd --version | head -1 | awk '{print $3}') startup to /health, fresh: runs=$RUNS median_ms=$(printf '%s\n' "${fresh[@]}" | median) all=[${fresh[*]}]"
    echo "etcd startup to /health, restart:                  runs=$RUNS median_ms=$(printf '%s\n' "${restart[@]}" | median) all=[${restart[*]}]"
else
    echo "etcd not installed (apt-get install etcd-server): peer figures skipped"
fi
