#!/usr/bin/env bash
# Fetches the face_recognition 1.3.0 test images (MIT) into the cache and checks
# every file against pinned SHA-256 sums. Idempotent: a verified copy is reused.
#
# Usage: tools/setup-test-data.sh        (CACHE defaults to <repo>/.ipseity-cache)
# Result: $CACHE/test_images/*.jpg|png, as listed in tests/data/test_images.sha256
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CACHE:-$REPO/.ipseity-cache}"
PACKAGE="face_recognition==1.3.0"
TARBALL="face_recognition-1.3.0.tar.gz"
TARBALL_SHA256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
MEMBER_DIR="face_recognition-1.3.0/tests/test_images"
SUMS="$REPO/tests/data/test_images.sha256"
IMAGES="$CACHE/test_images"

log() { printf 'setup-test-data: %s\n' "$*" >&2; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# Checks every image listed in $SUMS under $IMAGES; quiet, status only.
images_ok() {
    [[ -d "$IMAGES" ]] || return 1
    local sum name
    while read -r sum name; do
        [[ -n "$sum" ]] || continue
        [[ -f "$IMAGES/$name" ]] || return 1
        [[ "$(sha256_of "$IMAGES/$name")" == "$sum" ]] || return 1
    done <"$SUMS"
}

if images_ok; then
    log "test images already present and verified in $IMAGES"
    exit 0
fi

mkdir -p "$CACHE"
if [[ ! -f "$CACHE/$TARBALL" || "$(sha256_of "$CACHE/$TARBALL")" != "$TARBALL_SHA256" ]]; then
    rm -f "$CACHE/$TARBALL"
    log "downloading $PACKAGE source distribution with pip"
    if ! python3 -m pip download --disable-pip-version-check --no-input \
        --no-deps --no-binary :all: "$PACKAGE" -d "$CACHE"; then
        log "pip could not download $PACKAGE: could not reach the package registry"
        log "(check the network or your pip index/proxy settings), or place $TARBALL"
        log "in $CACHE by hand and rerun."
        exit 1
    fi
fi

actual="$(sha256_of "$CACHE/$TARBALL")"
if [[ "$actual" != "$TARBALL_SHA256" ]]; then
    log "checksum mismatch for $CACHE/$TARBALL"
    log "  expected $TARBALL_SHA256"
    log "  actual   $actual"
    exit 1
fi

tmp="$(mktemp -d "$CACHE/.test_images.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$CACHE/$TARBALL" -C "$tmp" "$MEMBER_DIR"
rm -rf "$IMAGES"
mkdir -p "$IMAGES"
while read -r sum name; do
    [[ -n "$sum" ]] || continue
    src="$tmp/$MEMBER_DIR/$name"
    if [[ ! -f "$src" ]]; then
        log "$TARBALL lacks $name"
        exit 1
    fi
    got="$(sha256_of "$src")"
    if [[ "$got" != "$sum" ]]; then
        log "checksum mismatch for $name: expected $sum, got $got"
        exit 1
    fi
    cp "$src" "$IMAGES/$name"
done <"$SUMS"

images_ok
log "test images ready in $IMAGES ($(wc -l <"$SUMS" | tr -d ' ') files)"
