#!/usr/bin/env bash
# The README's first command: on a fresh machine, build Ipseity, install the
# pinned models, fetch the face_recognition test portraits, and run the main job
# on an embedded store in a fresh data directory: enrol two people, verify a
# genuine and an impostor claim, identify a probe, refuse a duplicate enrolment.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CACHE="${CACHE:-$REPO/.ipseity-cache}"
tools/setup-test-data.sh
cargo build --release -q -p ipseity-cli
IMG="$CACHE/test_images"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/ipseity-demo.XXXXXX")"
ipseity() { "${CARGO_TARGET_DIR:-$REPO/target}/release/ipseity" --data-dir "$DATA" --models-dir "$CACHE/models" --purpose demo "$@"; }
step() { printf '\n$ ipseity %s\n' "$*"; }
run() { step "$@"; set +e; ipseity "$@"; echo "(exit $?)"; set -e; }

run models install
run enroll --subject obama --face "$IMG/obama.jpg"
run enroll --subject biden --face "$IMG/biden.jpg"
run verify --subject obama --face "$IMG/obama2.jpg"
run verify --subject obama --face "$IMG/biden.jpg"
run identify --face "$IMG/obama3.jpg"
run enroll --subject someone-else --face "$IMG/obama_partial_face2.jpg"
run list
run audit
echo
echo "Store, key and audit log are in $DATA"
