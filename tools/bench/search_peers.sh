#!/usr/bin/env bash
# Runs faiss (IndexFlatIP) and usearch (exact and HNSW) on the same synthetic
# gallery as `cargo bench -p ipseity-index --bench search`, then Ipseity itself,
# and prints one JSON line per engine.
#
# Usage: tools/bench/search_peers.sh [N] [DIM] [QUERIES]
# Environment (passed to search_peers.py): SINGLE=200 probes timed one by one,
# USEARCH=0 skips usearch entirely, HNSW=0 skips usearch's HNSW,
# HNSW_LIMIT_S=900 abandons an HNSW build after that many seconds (reported as
# capped), RERANK=memory or sealed picks where Ipseity keeps its f32 re-rank rows.
set -euo pipefail
N=${1:-1000000}
DIM=${2:-128}
Q=${3:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$ROOT/.ipseity-cache"
VENV="$CACHE/benchvenv"
DATA="$CACHE/bench-data"
mkdir -p "$DATA"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet faiss-cpu usearch numpy
fi
cd "$ROOT"
if [ ! -f "$DATA/gallery_${N}_${DIM}.npy" ]; then
  cargo run --quiet --release -p ipseity-index --example export_gallery -- "$N" "$DIM" "$Q" "$DATA"
fi
"$VENV/bin/python" "$ROOT/tools/bench/search_peers.py" "$DATA/gallery_${N}_${DIM}.npy" "$DATA/queries_${N}_${DIM}.npy"
load() { echo "{\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"at\":\"$1\"}"; }
load "ipseity start"
cargo bench --quiet -p ipseity-index --bench search -- --n "$N" --dim "$DIM" --batch "$Q" \
  --single "${SINGLE:-200}" --storage int8 --rerank "${RERANK:-memory}" 2>/dev/null | grep '^{'
load "ipseity end"
