#!/usr/bin/env bash
# The README's test command: installs what the tests need (the pinned dlib
# models and the face_recognition test portraits, both by pip download and
# checked by sha256; the liveness models from ../shared/models; PostgreSQL
# from Debian's packages, started as a throwaway server on a Unix socket for
# the run), then runs every test in the workspace with the model-dependent and
# PostgreSQL tests required rather than skipped; then the PC/SC reader test through
# pcscd with a virtual reader.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CACHE="${CACHE:-$REPO/.ipseity-cache}"
tools/setup-test-data.sh
# Built with the test profile, so the test run below reuses the artifacts.
cargo run --profile test -q -p ipseity-cli -- --models-dir "$CACHE/models" models install
# The liveness models (enrolment and verification check liveness by default) are on no
# package index: they come from ../shared/models where it is beside the clone, else from
# their pinned URLs. Where neither works the tests that need them say so and skip (CI,
# with ../shared, requires them).
SHARED_MODELS="${IPSEITY_SHARED_DIR:-$REPO/../shared}/models"
if [ -d "$SHARED_MODELS" ]; then
  cargo run --profile test -q -p ipseity-cli -- --models-dir "$CACHE/models" \
    models install --from "$SHARED_MODELS"
else
  cargo run --profile test -q -p ipseity-cli -- --models-dir "$CACHE/models" \
    models install --liveness || echo "note: no liveness models; the tests that need them will skip" >&2
fi
export IPSEITY_MODELS_DIR="$CACHE/models"
export IPSEITY_TEST_IMAGES="$CACHE/test_images"
export IPSEITY_REQUIRE_MODELS=1
# The storage tests run on both backends: the embedded store and this server.
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ipseity-pg.XXXXXX")"
trap 'tools/pg.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"' EXIT
eval "$(tools/pg.sh start "$PG_DIR")"
export IPSEITY_REQUIRE_POSTGRES=1
cargo test --workspace "$@"
# The PC/SC reader path (`--reader`, the `pcsc` feature) against pcscd and a virtual
# reader serving a simulated chip; like PostgreSQL, pcscd and the virtual reader come
# from Debian's packages (tools/pcsc.sh, as root or with sudo).
trap 'tools/pcsc.sh stop "$PG_DIR/pcscd.pid" || true; tools/pg.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"' EXIT
tools/pcsc.sh start "$PG_DIR/pcscd.pid"
IPSEITY_REQUIRE_PCSC=1 cargo test -p ipseity-cli --features pcsc --test pcsc_reader "$@"
