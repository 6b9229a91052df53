#!/usr/bin/env bash
# Debian packages the image tests need (tests/images_*.rs): a real registry
# (docker-registry), skopeo to copy images into it, busybox-static as image
# content and umoci to build the OCI image; openssl (test CA) and
# apache2-utils (`htpasswd -B`) for the TLS + auth registry; dnsmasq as an
# upstream resolver for cluster DNS tests (tests/services.rs). Installs only
# what is missing.
set -euo pipefail
need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# An upstream resolver in a test namespace for the cluster DNS's forwarding.
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
[ -x /bin/busybox ] && /bin/busybox --help 2>/dev/null | grep -q static \
    || dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    echo "install-image-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
