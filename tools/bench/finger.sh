#!/usr/bin/env bash
# Fingerprints side by side, in one run on one machine: Ipseity and NIST NBIS
# (MINDTCT + BOZORTH3, tools/bench/finger_peer.sh) on the same synthetic
# impressions, FVC protocol (all genuine pairs; first impressions against each
# other for impostors).
#
# Usage: tools/bench/finger.sh [FINGERS=200] [IMPRESSIONS=8] [DIFFICULTY=hard] [SEED=1]
# Output: $OUT (default .ipseity-cache/finger-bench/): ipseity.json, det.svg,
# ipseity-scores.csv, peer.json, scores.csv, and a summary table on stdout.
set -euo pipefail
N=${1:-200}
K=${2:-8}
DIFF=${3:-hard}
SEED=${4:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/.ipseity-cache/finger-bench}
SET="$ROOT/.ipseity-cache/bench-data/finger-$N-$K-$DIFF-$SEED"
mkdir -p "$OUT"
cargo build --release -q -p ipseity-cli
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ipseity"
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

if [ ! -f "$SET/$(printf '%05d' "$N")_$K.png" ]; then
  "$BIN" --data-dir "$DATA" finger synth --fingers "$N" --impressions "$K" \
    --difficulty "$DIFF" --seed "$SEED" --out "$SET"
fi
echo "cpu: $(sed -n 's/^Model name: *//p' <(lscpu) | head -n1), $(nproc) cores" >&2
echo "ipseity: load before $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Extraction runs one image per thread; the per-image time it reports is one core's.
"$BIN" --data-dir "$DATA" --json finger eval --dir "$SET" --fingers "$N" \
  --det "$OUT/det.svg" --scores "$OUT/ipseity-scores.csv" > "$OUT/ipseity.json"
echo "ipseity: load after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
FINGER_PEER_OUT="$OUT" tools/bench/finger_peer.sh "$SET" "$N" "$K" > "$OUT/peer-summary.txt"

python3 - "$OUT/ipseity.json" "$OUT/peer.json" <<'PY'
import json, sys
ips, peer = (json.load(open(p)) for p in sys.argv[1:3])
def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"
n, a = ips["native"], peer["accuracy"]
rows = [
    ("", "Ipseity", f'NBIS {peer["peer"]["version"]} (mindtct + bozorth3)'),
    ("impressions", str(ips["impressions"]), str(peer["dataset"]["images"])),
    ("failed to extract", str(ips["failed"]), "0"),
    ("genuine / impostor pairs", f'{n["genuine"]} / {n["impostor"]}', f'{peer["genuine_pairs"]} / {peer["impostor_pairs"]}'),
    ("EER", pct(n["eer"]), pct(a["eer"])),
    ("FNMR @ FMR 1e-3", pct(n["fnmr_at_fmr_1e3"]), pct(a["fnmr_at_fmr_1e3"])),
    ("FNMR @ FMR 1e-4", pct(n["fnmr_at_fmr_1e4"]), pct(a["fnmr_at_fmr_1e4"])),
    ("EER after ISO 19794-2 round trip", pct(ips["iso_round_trip"]["eer"]), "-"),
    ("FNMR @ 1e-4 after ISO round trip", pct(ips["iso_round_trip"]["fnmr_at_fmr_1e4"]), "-"),
    ("extraction ms/impression (median)", f'{ips["speed"]["extraction_ms_median"]:.1f}', f'{peer["extraction_ms"]["median"]:.1f}'),
    ("comparisons/s, one core", f'{ips["speed"]["comparisons_per_second_one_thread"]:.0f}', f'{peer["comparisons"]["per_second"]:.0f}'),
]
t = ips.get("extraction_truth")
if t:
    rows.append(("minutiae recall / precision vs truth", f'{t["recall"]:.3f} / {t["precision"]:.3f}', "-"))
w0 = max(len(r[0]) for r in rows); w1 = max(len(r[1]) for r in rows)
for r in rows:
    print(f"| {r[0]:<{w0}} | {r[1]:<{w1}} | {r[2]} |")
PY
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
