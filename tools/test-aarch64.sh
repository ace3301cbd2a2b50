#!/usr/bin/env bash
# Cross-tests ipseity-index on aarch64 under qemu user-mode emulation, so the
# NEON kernels are checked against their scalar twins without an ARM machine.
# Not part of CI: it needs root (or the packages already installed) and runs
# slowly under emulation. See docs/PORTABILITY.md.
#
# Usage: tools/test-aarch64.sh [extra cargo test args...]
#   QEMU_CPUS="max:NeonDotprod cortex-a72:Neon"
#                               CPU models to run the tests on, each with the
#                               kernel level its features must select (checked
#                               by a test); together they take every NEON path.
#   AARCH64_LIB_ONLY=1          only the unit tests (no integration tests).
#   AARCH64_SKIP_INSTALL=1      never call apt-get or rustup.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET=aarch64-unknown-linux-gnu

# Debian's qemu-user ships qemu-aarch64; qemu-user-static ships
# qemu-aarch64-static. Either will do.
qemu() { command -v qemu-aarch64 || command -v qemu-aarch64-static; }
need=()
qemu >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
if [ "${#need[@]}" -gt 0 ]; then
    if [ -n "${AARCH64_SKIP_INSTALL:-}" ]; then
        echo "missing: ${need[*]} (AARCH64_SKIP_INSTALL is set)" >&2
        exit 1
    fi
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    [ -z "${AARCH64_SKIP_INSTALL:-}" ] || { echo "missing rust target $TARGET" >&2; exit 1; }
    rustup target add "$TARGET"
fi

QEMU="$(qemu)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
args=(-p ipseity-index --target "$TARGET")
[ -z "${AARCH64_LIB_ONLY:-}" ] || args+=(--lib)

# Build once, then run on each CPU model: `max` has dotprod; cortex-a72 is
# plain Armv8.0 NEON, which takes the baseline int8 kernel.
cargo test "${args[@]}" --no-run "$@"
for spec in ${QEMU_CPUS:-max:NeonDotprod cortex-a72:Neon}; do
    cpu="${spec%%:*}"
    echo "== $QEMU -cpu $cpu"
    if [ "$spec" != "$cpu" ]; then
        export IPSEITY_EXPECT_KERNEL="${spec#*:}"
    else
        unset IPSEITY_EXPECT_KERNEL
    fi
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU -cpu $cpu -L /usr/aarch64-linux-gnu" \
        cargo test "${args[@]}" "$@"
done
