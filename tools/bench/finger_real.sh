#!/usr/bin/env bash
# Fingerprints on real impressions, side by side in one run on one machine: Ipseity
# (`ipseity finger eval --all-pairs`) and NIST NBIS (MINDTCT + BOZORTH3 from nbis-py, via
# tools/bench/finger_peer.sh) on every set of a folder of sets, each set a directory of
# FFFFF_I.png impressions (finger, impression). Every genuine pair within a finger; every
# pair of impressions of different fingers as impostors. One metric code for all systems
# (ipseity-eval's, which finger_peer.py reproduces).
#
# A set's resolution is read from its first image's pHYs chunk and given to NBIS; Ipseity
# reads it from each file itself. Where the folder holds `sourceafis_scores/<set>.csv`
# (columns kind,a,b,score; kinds genuine and impostor_allpairs), SourceAFIS's figures are
# computed from those scores with the same code: it needs a JVM, which this machine lacks.
#
# Usage: tools/bench/finger_real.sh [SETS=../shared/finger/fvc-dev]
# Output: $OUT (default .ipseity-cache/finger-real/): per set ipseity.json, det.svg,
# scores CSVs, NBIS's peer.json; summary.md (the table) is printed too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SETS=$(cd "${1:-$ROOT/../shared/finger/fvc-dev}" && pwd)
OUT=${OUT:-$ROOT/.ipseity-cache/finger-real}
mkdir -p "$OUT"
cd "$ROOT"
cargo build --release -q -p ipseity-cli
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ipseity"
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

# pHYs of a PNG in pixels per metre, as ppi (500 when absent).
png_ppi() {
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
i, ppi = 8, 500
while i + 8 <= len(b):
    n, kind = struct.unpack(">I4s", b[i:i + 8])
    if kind == b"pHYs":
        x, _, unit = struct.unpack(">IIB", b[i + 8:i + 17])
        if unit == 1:
            ppi = round(x * 0.0254)
        break
    if kind == b"IDAT":
        break
    i += 12 + n
print(ppi)
PY
}

echo "cpu: $(sed -n 's/^Model name: *//p' <(lscpu) | head -n1), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
names=()
for dir in "$SETS"/*/; do
  dir=${dir%/}
  set=$(basename "$dir")
  first=$(ls "$dir" | grep -E '^[0-9]{5}_[0-9]+\.png$' | head -n1 || true)
  [ -n "$first" ] || continue
  names+=("$set")
  ppi=$(png_ppi "$dir/$first")
  mkdir -p "$OUT/$set"
  echo "== $set ($ppi ppi)" >&2
  "$BIN" --data-dir "$DATA" --json finger eval --dir "$dir" --all-pairs \
    --det "$OUT/$set/det.svg" --scores "$OUT/$set/ipseity-scores.csv" > "$OUT/$set/ipseity.json"
  FINGER_PEER_OUT="$OUT/$set" tools/bench/finger_peer.sh "$dir" --impostors all --ppi "$ppi" --jobs 0 \
    > "$OUT/$set/nbis-summary.txt"
done
[ ${#names[@]} -gt 0 ] || { echo "no sets of FFFFF_I.png impressions in $SETS" >&2; exit 2; }

"$ROOT/.ipseity-cache/fingerpeer-venv/bin/python" - "$OUT" "$SETS" "$ROOT/tools/bench" "${names[@]}" <<'PY' | tee "$OUT/summary.md"
import csv, json, os, sys
out, sets_dir, bench = sys.argv[1:4]
sys.path.insert(0, bench)
from finger_peer import summarize

def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"

rows, pooled = [], {"ipseity": ([], []), "nbis": ([], []), "sourceafis": ([], [])}
for name in sys.argv[4:]:
    ips = json.load(open(f"{out}/{name}/ipseity.json"))
    nb = json.load(open(f"{out}/{name}/peer.json"))
    g, i = [], []
    for r in csv.DictReader(open(f"{out}/{name}/ipseity-scores.csv")):
        (g if r["kind"] == "genuine" else i).append(float(r["score"]))
    pooled["ipseity"][0].extend(g); pooled["ipseity"][1].extend(i)
    pooled["nbis"][0].extend(nb["genuine_scores"]); pooled["nbis"][1].extend(nb["impostor_scores"])
    sa = None
    path = f"{sets_dir}/sourceafis_scores/{name}.csv"
    if os.path.exists(path):
        sg, si = [], []
        for r in csv.DictReader(open(path)):
            if r["kind"] == "genuine":
                sg.append(float(r["score"]))
            elif r["kind"] == "impostor_allpairs":
                si.append(float(r["score"]))
        if sg and si:
            sa = summarize(sg, si)
            pooled["sourceafis"][0].extend(sg); pooled["sourceafis"][1].extend(si)
    rows.append((name, ips, nb, sa))

print("| set | system | EER | FNMR @ FMR 1e-2 | FNMR @ FMR 1e-3 | failed to extract | genuine / impostor pairs |")
print("|---|---|---|---|---|---|---|")
means = {"ipseity": [], "nbis": [], "sourceafis": []}
for name, ips, nb, sa in rows:
    n = ips["native"]
    means["ipseity"].append(n["eer"])
    print(f"| {name} | Ipseity | **{pct(n['eer'])}** | {pct(n['fnmr_at_fmr_1e2'])} | {pct(n['fnmr_at_fmr_1e3'])} | {ips['failed']} of {ips['impressions']} | {n['genuine']} / {n['impostor']} |")
    a = nb["accuracy"]
    means["nbis"].append(a["eer"])
    print(f"| | NBIS {nb['peer']['version']} ({nb['peer']['settings']['ppi']} ppi) | {pct(a['eer'])} | {pct(a['fnmr_at_fmr_1e2'])} | {pct(a['fnmr_at_fmr_1e3'])} | - | {a['genuine']} / {a['impostor']} |")
    if sa:
        means["sourceafis"].append(sa["eer"])
        print(f"| | SourceAFIS (stored scores) | {pct(sa['eer'])} | {pct(sa['fnmr_at_fmr_1e2'])} | {pct(sa['fnmr_at_fmr_1e3'])} | - | {sa['genuine']} / {sa['impostor']} |")
print()
print("| all sets | mean EER | pooled EER | pooled FNMR @ 1e-2 | pooled FNMR @ 1e-3 | pooled FNMR @ 1e-4 |")
print("|---|---|---|---|---|---|")
for key, label in [("ipseity", "Ipseity"), ("nbis", "NBIS"), ("sourceafis", "SourceAFIS")]:
    g, i = pooled[key]
    if not g or len(means[key]) != len(rows):
        continue
    s = summarize(g, i)
    mean = sum(means[key]) / len(means[key])
    print(f"| {label} | {pct(mean)} | {pct(s['eer'])} | {pct(s['fnmr_at_fmr_1e2'])} | {pct(s['fnmr_at_fmr_1e3'])} | {pct(s['fnmr_at_fmr_1e4'])} |")
print()
ext = [ips["speed"]["extraction_ms_median"] for _, ips, _, _ in rows]
cps = [ips["speed"]["comparisons_per_second_one_thread"] for _, ips, _, _ in rows]
nbx = [nb["extraction_cpu_ms"]["median"] for _, _, nb, _ in rows]
nbc = [nb["comparisons"]["per_cpu_second"] for _, _, nb, _ in rows]
print(f"Ipseity: extraction median {min(ext):.1f}-{max(ext):.1f} ms per impression (one per core), "
      f"{min(cps):,.0f}-{max(cps):,.0f} comparisons per second on one thread.")
print(f"NBIS: extraction median {min(nbx):.1f}-{max(nbx):.1f} ms CPU, {min(nbc):,.0f}-{max(nbc):,.0f} comparisons per CPU-second.")
for name, ips, _, _ in rows:
    for f in ips["failures"]:
        print(f"- {name}: {os.path.basename(f['path'])}: {f['message'].split(': ', 1)[-1]} ({f['code']})")
PY
