#!/usr/bin/env bash
# Checks Ipseity's MiniFASNet liveness against PyTorch on identical input.
#
#   tools/liveness/reference.sh            # venv + patches + PyTorch + the Rust comparison
#
# 1. makes a virtual environment with torch and numpy from pip's default
#    index (on x86-64 Linux that torch build pulls its CUDA libraries, a few
#    GB; only the CPU is used);
# 2. has the Rust test `write_crops` write the exact 80x80 BGR patches our
#    code feeds the networks (the three sample photos at both crop scales,
#    plus two noise patches);
# 3. runs them through reference.py (MiniFASNet rebuilt from torch.nn layers);
# 4. runs the Rust test `agrees_with_pytorch` on that output, which prints
#    the largest absolute difference and fails above 1e-4.
#
# Needs ../shared/models (or IPSEITY_SHARED_DIR) and dlib's models in
# IPSEITY_MODELS_DIR. Work files go to LIVENESS_WORK (default target/liveness-reference).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${IPSEITY_SHARED_DIR:-$root/../shared}
models=$shared/models/silent_face_anti_spoofing/resources/anti_spoof_models
work=${LIVENESS_WORK:-$root/target/liveness-reference}
venv=${LIVENESS_VENV:-$work/venv}

[ -d "$models" ] || { echo "no models at $models" >&2; exit 1; }
[ -n "${IPSEITY_MODELS_DIR:-}" ] || { echo "set IPSEITY_MODELS_DIR (dlib's models)" >&2; exit 1; }
mkdir -p "$work"

if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch numpy
fi

rm -rf "$work/crops"
cd "$root"
IPSEITY_REQUIRE_SHARED=1 IPSEITY_LIVENESS_CROPS_OUT="$work/crops" \
    cargo test -q -p ipseity-face --test liveness -- --exact write_crops
"$venv/bin/python" "$root/tools/liveness/reference.py" "$models" "$work/crops" > "$work/reference.txt"
cat "$work/reference.txt"
IPSEITY_REQUIRE_SHARED=1 IPSEITY_LIVENESS_REFERENCE="$work/reference.txt" \
    cargo test -q -p ipseity-face --test liveness -- --exact agrees_with_pytorch --nocapture
