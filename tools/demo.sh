#!/usr/bin/env bash
# The README's first command: on a fresh machine, build Ipseity, install the
# pinned models, fetch the face_recognition test portraits, and run the main job
# on an embedded store in a fresh data directory: enrol two people, verify a
# genuine and an impostor claim, identify a probe, refuse a duplicate enrolment;
# then the same with synthetic fingerprints.
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
# Enrolment and verification check liveness (presentation attacks) by default. Its
# models are on no package index: they come from ../shared/models when it is beside
# the clone (`models install --from DIR`), else from their pinned URLs (`models install
# --liveness`), each checked by SHA-256; when neither works the demo runs with the check
# off, which the audit log records.
SHARED_MODELS="${IPSEITY_SHARED_DIR:-$REPO/../shared}/models"
LIVE=()
if [ -d "$SHARED_MODELS" ]; then
  run models install --from "$SHARED_MODELS"
elif ! ipseity models install --liveness; then
  echo "note: the liveness models could not be installed; enrolling and verifying with --no-liveness"
  LIVE=(--no-liveness)
fi
run enroll "${LIVE[@]}" --subject obama --face "$IMG/obama.jpg"
run enroll "${LIVE[@]}" --subject biden --face "$IMG/biden.jpg"
run verify "${LIVE[@]}" --subject obama --face "$IMG/obama2.jpg"
run verify "${LIVE[@]}" --subject obama --face "$IMG/biden.jpg"
if [ ${#LIVE[@]} -eq 0 ] && [ -d "$SHARED_MODELS" ]; then
  # A photo of a face shown to the camera, from the liveness model's own samples: refused
  # as a presentation attack before any comparison.
  run verify --subject obama --face "$SHARED_MODELS/silent_face_anti_spoofing/images/sample/image_F1.jpg"
fi
run identify --face "$IMG/obama3.jpg"
run enroll "${LIVE[@]}" --subject someone-else --face "$IMG/obama_partial_face2.jpg"

# Fingerprints: synthetic prints (no real person's data), two fingers for obama,
# one for biden, an ISO 19794-2 record, 1:1 and 1:N, and a duplicate refused.
FP="$DATA/synthetic-prints"
run finger synth --fingers 3 --impressions 3 --seed 1 --out "$FP"
run finger enroll --subject obama --finger "right-index=$FP/00001_1.png" "right-middle=$FP/00002_1.png"
run finger extract --image "$FP/00003_1.png" --position left-thumb --format iso --out "$DATA/biden-left-thumb.iso"
run finger enroll --subject biden --finger "$DATA/biden-left-thumb.iso"
run finger verify --subject obama --finger "right-index=$FP/00001_2.png" "right-middle=$FP/00002_3.png"
run finger verify --subject obama --finger "$FP/00003_2.png"
run finger identify --finger "$FP/00003_3.png"
run finger enroll --subject someone-else --finger "$FP/00001_3.png"
run list
run audit
echo
echo "Store, key and audit log are in $DATA"
