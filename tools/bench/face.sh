#!/usr/bin/env bash
# Face pipeline speed, Ipseity against face_recognition (dlib) on the same images
# in the same run, on 1 and 2 threads. Prints JSON lines; copy them into
# docs/BENCHMARKS.md with the machine description this prints first.
#
# Usage: tools/bench/face.sh   (BENCH_IMAGES=obama.jpg,biden.jpg BENCH_EMBED_REPS=20)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export CACHE="${CACHE:-$REPO/.ipseity-cache}"
tools/setup-test-data.sh
cargo run --release -q -p ipseity-cli -- --models-dir "$CACHE/models" models install >&2
export IPSEITY_MODELS_DIR="$CACHE/models" IPSEITY_TEST_IMAGES="$CACHE/test_images"
# The peer: face_recognition with the prebuilt dlib wheel, in the reference venv.
REFVENV="${REFVENV:-$CACHE/refvenv}" tools/reference/make_reference.sh --venv-only >&2
echo "{\"machine\":\"$(uname -m) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\"}"
cargo bench -q -p ipseity-face --bench face
for t in 1 2; do
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t \
        "${REFVENV:-$CACHE/refvenv}/bin/python" tools/bench/face_peer.py
done
