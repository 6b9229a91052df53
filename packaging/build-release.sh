#!/bin/sh
# Builds the release binary (Cargo.toml's [profile.release]: fat LTO, one
# codegen unit, symbols stripped, static) and lays out a download directory
# as packaging/install.sh expects it:
#
#   dist/skiff-ARCH  dist/sha256sum-ARCH.txt  dist/install.sh
#
# Prints the size and sha256. With --max-mib N it fails when the binary is
# larger than N MiB, so that it never grows by accident (the test command
# runs it with the limit below).
#
#   packaging/build-release.sh [--out DIR] [--max-mib N]
set -eu
cd "$(dirname "$0")/.."

# (test.sh's limit sits a little above today's size, 31.3 MiB: BENCHMARKS.md,
# "Release build and footprint".)
MAX_MIB=
OUT=dist
while [ $# -gt 0 ]; do
    case "$1" in
    --max-mib)
        MAX_MIB=$2
        shift 2
        ;;
    --out)
        OUT=$2
        shift 2
        ;;
    *)
        echo "usage: $0 [--out DIR] [--max-mib N]" >&2
        exit 2
        ;;
    esac
done

TARGET=x86_64-unknown-linux-gnu
case "$(uname -m)" in
x86_64) ARCH=amd64 ;;
aarch64)
    ARCH=arm64
    TARGET=aarch64-unknown-linux-gnu
    ;;
*)
    echo "build-release.sh: no release build set up for $(uname -m)" >&2
    exit 1
    ;;
esac

cargo build --release --locked --bin skiff --target "$TARGET"
BIN=target/$TARGET/release/skiff

# One static binary: no program interpreter, no shared libraries.
if LC_ALL=C ldd "$BIN" 2>&1 | grep -q '=>'; then
    echo "build-release.sh: $BIN links shared libraries:" >&2
    ldd "$BIN" >&2
    exit 1
fi

mkdir -p "$OUT"
cp "$BIN" "$OUT/skiff-$ARCH.new"
mv -f "$OUT/skiff-$ARCH.new" "$OUT/skiff-$ARCH"
cp packaging/install.sh "$OUT/install.sh"
(cd "$OUT" && sha256sum "skiff-$ARCH" >"sha256sum-$ARCH.txt")

bytes=$(wc -c <"$OUT/skiff-$ARCH")
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "skiff-$ARCH: $bytes bytes ($mib MiB), sha256 $(cut -d' ' -f1 "$OUT/sha256sum-$ARCH.txt")"
echo "in $OUT: skiff-$ARCH sha256sum-$ARCH.txt install.sh"

if [ -n "$MAX_MIB" ]; then
    if [ "$bytes" -gt $((MAX_MIB * 1048576)) ]; then
        echo "build-release.sh: the binary is $mib MiB, over the $MAX_MIB MiB limit." >&2
        echo "Find what grew (bench/binary-size.sh) before raising the limit in test.sh." >&2
        exit 1
    fi
    echo "within the $MAX_MIB MiB limit"
fi
