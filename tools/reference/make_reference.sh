#!/usr/bin/env bash
# Regenerates tests/data/face_reference.json with dlib's own face pipeline, the
# reference Ipseity's Rust face pipeline is compared against.
#
# Builds a pinned venv in $CACHE/refvenv (once), fetches the test images with
# tools/setup-test-data.sh, then runs make_reference.py.
# Usage: tools/reference/make_reference.sh   (CACHE defaults to <repo>/.ipseity-cache;
#        REFVENV overrides the venv location, e.g. an existing one)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CACHE:-$REPO/.ipseity-cache}"
export CACHE
VENV="${REFVENV:-$CACHE/refvenv}"
OUT="$REPO/tests/data/face_reference.json"

log() { printf 'make_reference: %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import dlib, face_recognition' 2>/dev/null; then
    log "creating reference venv in $VENV"
    python3 -m venv "$VENV"
    pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input)
    # dlib-bin is a prebuilt dlib wheel, so nothing is compiled.
    "${pip[@]}" "dlib-bin==20.0.1.post1" numpy Pillow Click
    # --no-deps: face_recognition depends on "dlib", which pip would try to build
    # from source; dlib-bin above provides the same module.
    "${pip[@]}" --no-deps "face_recognition==1.3.0" "face_recognition_models==0.3.0"
fi

if [[ "${1:-}" == "--venv-only" ]]; then
    exit 0
fi

"$REPO/tools/setup-test-data.sh"

"$VENV/bin/python" "$REPO/tools/reference/make_reference.py" \
    --images "$CACHE/test_images" --out "$OUT"
log "done; review the diff of $OUT before committing"
