#!/usr/bin/env bash
# Fingerprint peer benchmark: NIST NBIS (MINDTCT + BOZORTH3, from the nbis-py
# package) on a directory of {finger:05}_{impression}.png impressions, with the
# FVC protocol. Writes a JSON report (timings, score lists, EER, FNMR at FMR)
# and a score CSV, and prints a summary.
#
# Usage: tools/bench/finger_peer.sh DIR [N] [K] [extra finger_peer.py args]
#   DIR  impressions (8-bit grayscale, 500 ppi, dark ridges on light)
#   N    fingers 1..N (default: all)       K  impressions 1..K (default: all)
#   extra args, e.g. --synth (first write a synthetic development set of
#   N x K, default 20 x 8, into DIR), --impostors all, --jobs 1
# Output goes to $FINGER_PEER_OUT (default .ipseity-cache/finger-peer):
#   peer.json, scores.csv, freeze.txt, lscpu.txt.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
DIR=$1
shift
N=
K=
if [[ ${1:-} =~ ^[0-9]+$ ]]; then N=$1; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then K=$1; shift; fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REQ="$ROOT/tools/bench/finger_peer_requirements.txt"
VENV="$ROOT/.ipseity-cache/fingerpeer-venv"
OUT=${FINGER_PEER_OUT:-$ROOT/.ipseity-cache/finger-peer}
mkdir -p "$OUT"

# (Re)build the venv when it is missing or the pinned versions changed.
STAMP="$VENV/.requirements.sha256"
WANT=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$WANT" > "$STAMP"
fi

"$VENV/bin/pip" freeze --disable-pip-version-check > "$OUT/freeze.txt"
lscpu > "$OUT/lscpu.txt" 2>/dev/null || true
CPU=$(sed -n 's/^Model name: *//p' "$OUT/lscpu.txt" | head -n1)
echo "cpu: ${CPU:-unknown}, $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "peer: $(grep -i '^nbis' "$OUT/freeze.txt" | tr '\n' ' ')" >&2

ARGS=(--dir "$DIR" --out "$OUT/peer.json" --scores-csv "$OUT/scores.csv")
[ -n "$N" ] && ARGS+=(--fingers "$N")
[ -n "$K" ] && ARGS+=(--impressions "$K")
# NBIS is single-threaded C and uses no BLAS; numpy only serves --synth. One
# thread each keeps idle BLAS workers out of the timings; the throughput pass
# uses one process per core (--jobs) instead.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"$VENV/bin/python" "$ROOT/tools/bench/finger_peer.py" "${ARGS[@]}" "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$VENV/bin/python" - "$OUT/peer.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a, c, d = r["accuracy"], r["comparisons"], r["dataset"]
def pct(x):
    return "n/a (too few impostors)" if x is None else f"{100 * x:.2f} %"
par = r.get("extraction_parallel")
rows = [
    ("peer", f'{r["peer"]["name"]} {r["peer"]["version"]}'),
    ("set", f'{d["fingers"]} fingers x {d["impressions_per_finger"]} impressions ({d["images"]} images)'),
    ("extraction ms/img (wall)", f'mean {r["extraction_ms"]["mean"]:.1f}, median {r["extraction_ms"]["median"]:.1f}'),
    ("extraction ms/img (cpu)", f'mean {r["extraction_cpu_ms"]["mean"]:.1f}, median {r["extraction_cpu_ms"]["median"]:.1f}'),
    ("extraction images/s", "-" if par is None else f'{par["images_per_second"]:.1f} with {par["jobs"]} process(es)'),
    ("minutiae/img", f'mean {r["minutiae_per_image"]["mean"]:.1f}'),
    ("comparisons/s, 1 core", f'{c["per_second"]:.0f} wall, {c["per_cpu_second"]:.0f} per cpu-second'),
    ("  genuine / impostor", f'{c["genuine_per_cpu_second"]:.0f} / {c["impostor_per_cpu_second"]:.0f} per cpu-second'),
    ("genuine / impostor pairs", f'{r["genuine_pairs"]} / {r["impostor_pairs"]} ({d["impostor_protocol"]})'),
    ("EER", pct(a["eer"])),
    ("FNMR @ FMR 1e-3", pct(a["fnmr_at_fmr_1e3"])),
    ("FNMR @ FMR 1e-4", pct(a["fnmr_at_fmr_1e4"])),
    ("FNMR @ FMR 0", pct(a["fnmr_at_zero_fmr"])),
    ("load average at end", " ".join(f"{x:.2f}" for x in r["host"]["loadavg"])),
]
w = max(len(k) for k, _ in rows)
for k, v in rows:
    print(f"{k:<{w}}  {v}")
PY
echo "report: $OUT/peer.json, scores: $OUT/scores.csv" >&2
