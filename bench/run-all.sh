#!/usr/bin/env bash
# Run every benchmark and print a Markdown report (machine, commands, raw
# results) on stdout: bench/run-all.sh > /tmp/bench.md
# Installs etcd-server (the nearest peer store packaged in Debian) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server >&2 || true
fi
(cargo build --release -q && cargo build --release -q --example apibench) >&2
export BENCH_NO_BUILD=1
echo "## Machine"
echo
echo '```'
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "kernel:  $(uname -r)"
echo "memory:"; free -h
echo "disk:    $(df -h --output=source,fstype /tmp | tail -1)"
command -v etcd >/dev/null && echo "etcd:    $(etcd --version | head -1)"
echo '```'
for s in startup memory list-memory throughput watch; do
    echo
    echo "## bench/$s.sh"
    echo
    echo '```'
    "bench/$s.sh"
    echo '```'
done
