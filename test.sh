#!/usr/bin/env bash
# The test command: installs what the tests need (Debian/Ubuntu), then runs
# formatting, lints and every test. Run as root (the integration tests create
# network namespaces). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (integration tests create network namespaces)" >&2
    exit 1
fi

# Debian packages the tests use: ip (iproute2) for network namespaces, curl
# for raw HTTPS checks, nft (nftables) to read back the table skiff programs
# over netlink (tests/net_nft.rs) and to firewall a test node
# (tests/cluster_nodes.rs); skiff itself never runs nft.
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# tests/packaging_units.rs: systemd accepts the units skiff installs.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The store suite on PostgreSQL (src/server/store/postgres/tests.rs) starts
# a server of its own from the package's programs.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# The image tests need a real registry, skopeo, umoci and busybox-static.
bash tests/support/install-image-deps.sh

# The real kubectl drives the integration tests; it is not packaged in
# Debian, so it must already be there.
if [ ! -x /usr/bin/kubectl ]; then
    echo "test.sh: /usr/bin/kubectl is missing; the integration tests need the real kubectl (1.32)" >&2
    exit 1
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --check

# The release binary must stay under its size limit: 31.5 MiB today
# (BENCHMARKS.md, "Release build and footprint"; the goal is under 25), so
# that it never grows by accident. Its build (fat LTO, one codegen unit) is
# long, so it runs beside the tests at the lowest priority, on the CPU they
# leave idle, and is waited for at the end.
MAX_MIB=33
mkdir -p target
setsid nice -n 19 packaging/build-release.sh --out target/dist --max-mib "$MAX_MIB" \
    >target/release-build.log 2>&1 &
release_pid=$!
trap 'kill -- "-$release_pid" 2>/dev/null || true' EXIT

cargo clippy --all-targets -- -D warnings
status=0
cargo test --no-fail-fast || status=$?

echo "test.sh: waiting for the release build (target/release-build.log)"
if ! wait "$release_pid"; then
    tail -n 30 target/release-build.log >&2
    echo "test.sh: the release build or its size check failed" >&2
    [ "$status" -ne 0 ] || status=1
else
    tail -n 3 target/release-build.log
fi
trap - EXIT
exit "$status"
