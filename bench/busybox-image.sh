# Sourced by the container benchmarks: busybox_image builds, in the current
# directory, the busybox image every tool runs (Debian's busybox-static in
# one layer, made with umoci as tests/support/registry.rs makes it) as the
# OCI layout `oci:latest`, and writes it as a docker-archive to $1
# (docker.io/library/busybox:latest). Leaves ./bundle (umoci's unpacked
# copy) behind for callers that want an OCI bundle.
busybox_image() {
    umoci init --layout oci >/dev/null && umoci new --image oci:latest
    umoci unpack --image oci:latest bundle >/dev/null
    mkdir -p bundle/rootfs/bin && cp "$(command -v busybox)" bundle/rootfs/bin/busybox
    local a
    for a in sh true sleep; do ln -s busybox "bundle/rootfs/bin/$a"; done
    umoci repack --image oci:latest bundle
    umoci config --image oci:latest --config.cmd sh --os linux --architecture amd64
    skopeo copy -q oci:oci:latest docker-archive:"$1":docker.io/library/busybox:latest
}
