#!/usr/bin/env bash
# What the release binary is made of. Builds Cargo.toml's release-symbols
# profile (the release profile with its symbols kept), then prints the
# binary's size once stripped, its biggest sections, and its biggest
# contributors by crate: symbol sizes from nm, each counted to the crate
# of its first path segment (so serde's code for skiff's own types counts
# to serde, drop glue to the type's crate), roughly what
# `cargo bloat --crates` shows.
#
# Usage: bench/binary-size.sh [TOP=25]   (SYMBOLS_BIN=path: a build with
# symbols made already; nothing is built then)
set -euo pipefail
cd "$(dirname "$0")/.."
TOP="${1:-25}"
TARGET=x86_64-unknown-linux-gnu
BIN="${SYMBOLS_BIN:-target/$TARGET/release-symbols/skiff}"
if [ -z "${SYMBOLS_BIN:-}" ]; then
    cargo build -q --profile release-symbols --bin skiff --target "$TARGET"
fi
STRIPPED="$(mktemp)"
trap 'rm -f "$STRIPPED" "$STRIPPED.syms"' EXIT
strip -o "$STRIPPED" "$BIN"
awk -v b="$(stat -c %s "$STRIPPED")" 'BEGIN { printf "stripped: %d bytes (%.1f MiB)\n", b, b / 1048576 }'
echo "sections (MiB):"
size -A "$STRIPPED" | awk '($1 ~ /^\./ || $1 == "Total") && $2 > 262144 { printf "  %-22s %6.2f\n", $1, $2 / 1048576 }' | sort -k2 -rn
nm -S --size-sort -C --radix=d "$BIN" >"$STRIPPED.syms" 2>/dev/null
python3 - "$STRIPPED.syms" "$TOP" <<'EOF'
import collections, re, sys
sizes = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4 or parts[2].lower() not in ("t", "r", "d", "w", "v"):
        continue
    name = parts[3]
    m = re.match(r"core::ptr::drop_in_place<(.*)", name)
    if m:
        name = m.group(1)
    prev = None
    while prev != name:
        prev, name = name, re.sub(r"^([<&*( \[]+|(dyn|mut|const) )", "", name)
    crate = re.split(r"::|<| |\[", name)[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", crate or ""):
        crate = "(other)"
    sizes[crate] += int(parts[1])
total = sum(sizes.values())
print(f"code and data in named symbols: {total / 1048576:.1f} MiB; biggest by crate:")
for crate, size in sizes.most_common(int(sys.argv[2])):
    print(f"  {size / 1048576:6.2f} MiB  {100 * size / total:4.1f}%  {crate}")
EOF
